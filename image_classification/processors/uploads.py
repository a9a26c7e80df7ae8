"""Accepting an upload: what kind of image the bytes are, a safe key, and storing it.

The type comes from the file's first bytes (its magic number), never from the name or the
content type the client claims. The stored key is generated (``uploads/<uuid>.<ext>``); the
client's file name is kept only as display text, in the object's metadata.
"""

from __future__ import annotations

import dataclasses
import io
import unicodedata
import uuid
from typing import IO, cast

from tideflow.io.strategies import ObjectStore, StoredObject

IMAGE_NAME_METADATA = "image_name"
UPLOAD_PREFIX = "uploads/"
SNIFF_BYTES = 16
_MAX_NAME_CHARS = 255


@dataclasses.dataclass(frozen=True)
class ImageType:
    format: str  # Pillow's name for it
    mime: str
    extension: str


JPEG = ImageType("JPEG", "image/jpeg", "jpg")
PNG = ImageType("PNG", "image/png", "png")
WEBP = ImageType("WEBP", "image/webp", "webp")
GIF = ImageType("GIF", "image/gif", "gif")
BMP = ImageType("BMP", "image/bmp", "bmp")
TIFF = ImageType("TIFF", "image/tiff", "tiff")
IMAGE_TYPES = (JPEG, PNG, WEBP, GIF, BMP, TIFF)
ACCEPTED_MIME_TYPES = [t.mime for t in IMAGE_TYPES]
_BY_FORMAT = {t.format: t for t in IMAGE_TYPES}


class UploadTooLargeError(Exception):
    """The upload is longer than the size limit; nothing was stored."""


def sniff_image_type(head: bytes) -> ImageType | None:
    """The image type the first ``SNIFF_BYTES`` of a file announce, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    # "BM" alone would match text starting with "BM"; the reserved header bytes are zero.
    if head[:2] == b"BM" and head[6:10] == b"\0\0\0\0":
        return BMP
    if head[:4] in (b"II*\0", b"MM\0*"):
        return TIFF
    return None


def mime_type_of(image_format: str) -> str:
    """The MIME type of a decoded image's Pillow format ("JPEG" -> "image/jpeg")."""
    known = _BY_FORMAT.get(image_format)
    return known.mime if known else f"image/{image_format.lower()}"


def display_name(filename: str | None) -> str:
    """The client's file name as display text: its last path part, no control characters."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf"))
    return name.strip()[:_MAX_NAME_CHARS] or "unnamed"


class _LimitedReader(io.RawIOBase):
    """Reads ``source`` but raises ``UploadTooLargeError`` past ``max_bytes``."""

    def __init__(self, source: IO[bytes], max_bytes: int) -> None:
        self._source = source
        self._max_bytes = max_bytes
        self._left = max_bytes

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        # google-cloud-storage's resumable upload asks where the stream starts.
        return self._max_bytes - self._left

    def read(self, size: int = -1) -> bytes:
        # Never ask for more than one byte past the limit: that byte proves it is too long.
        wanted = self._left + 1 if size < 0 else min(size, self._left + 1)
        chunk = self._source.read(wanted)
        self._left -= len(chunk)
        if self._left < 0:
            raise UploadTooLargeError(f"the upload is larger than {self._max_bytes} bytes")
        return chunk


def store_upload(
    objects: ObjectStore,
    *,
    file: IO[bytes],
    image_type: ImageType,
    image_name: str,
    max_bytes: int,
) -> StoredObject:
    """Store ``file`` under a new key; the stored version once it is durable (and, on the
    local stack, its event journaled).

    Bytes are counted while they are copied, so a stream longer than ``max_bytes`` raises
    ``UploadTooLargeError`` without being kept.
    """
    key = f"{UPLOAD_PREFIX}{uuid.uuid4().hex}.{image_type.extension}"
    return objects.put(
        key,
        # It has the read()/tell() that the stores call, not all of IO's methods.
        cast(IO[bytes], _LimitedReader(file, max_bytes)),
        content_type=image_type.mime,
        metadata={IMAGE_NAME_METADATA: image_name},
    )
