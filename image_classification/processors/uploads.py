"""Accepting an upload (``POST /image-upload``): what kind of image the bytes are, a safe
key, and storing it.

The type comes from the file's first bytes (its magic number), never from the name or the
content type the client claims. The stored key is generated (``uploads/<uuid>.<ext>``); the
client's file name is kept only as display text, in the object's metadata.
"""

from __future__ import annotations

import dataclasses
import io
import unicodedata
import uuid
from typing import IO, Annotated, cast

from fastapi import HTTPException
from pydantic import BaseModel

from image_classification.dependencies import Objects, SettingsDep
from image_classification.image_ids import image_id_for
from image_classification.processors.auth import Authorized
from image_classification.processors.errors import error_responses
from image_classification.processors.limits import too_large_message
from image_classification.processors.metrics import UPLOADS
from image_classification.settings import Settings
from tideflow import Router
from tideflow.exceptions import BucketFullError, BucketUnavailableError
from tideflow.io.strategies import ObjectStore, StoredObject
from tideflow.requests import File, UploadFile

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


# ------------------------------------------------------------------ the endpoint

UPLOAD_PATH = "/image-upload"
# What a client that was told "not stored" waits before sending the image again.
STORAGE_RETRY_AFTER_SECONDS = 10
_UPLOAD_OUTCOMES = {
    400: "bad_request",
    413: "too_large",
    415: "not_an_image",
    503: "not_stored",
    507: "storage_full",
}

router = Router()
ImageFile = Annotated[
    UploadFile | None,
    File(description="One image: JPEG, PNG, WebP, GIF, BMP or TIFF (checked from its bytes)."),
]


class UploadAccepted(BaseModel):
    image_id: str
    image_name: str
    status_url: str


def count_rejected(path: str) -> None:
    """Counts an upload the body size limit refused before the endpoint saw it."""
    if path == UPLOAD_PATH:
        UPLOADS.labels("too_large").inc()


def checked_image(
    image_file: UploadFile | None, settings: Settings
) -> tuple[UploadFile, ImageType]:
    """The uploaded file and its image type, or the HTTP error the contract gives for it."""
    if image_file is None:
        raise HTTPException(400, "No file: send the image as the multipart field 'image_file'.")
    if not image_file.size:
        raise HTTPException(400, "The file is empty.")
    if image_file.size > settings.max_upload_bytes:
        raise HTTPException(413, too_large_message(settings.max_upload_bytes))
    image_type = sniff_image_type(image_file.file.read(SNIFF_BYTES))
    image_file.file.seek(0)
    if image_type is None:
        raise HTTPException(
            415,
            "The file is not an image we accept: JPEG, PNG, WebP, GIF, BMP or TIFF "
            "(checked from its content, not its name or content type).",
        )
    return image_file, image_type


@router.endpoint(
    UPLOAD_PATH,
    method="POST",
    status_code=202,
    response_model=UploadAccepted,
    responses=error_responses(400, 401, 403, 413, 415, 503, 507),
    summary="Store an image; it is classified in the background",
)
def upload_image(
    auth: Authorized, objects: Objects, settings: SettingsDep, image_file: ImageFile = None
) -> UploadAccepted:
    """Answers 202 once the image is stored and its event journaled; poll ``status_url``."""
    try:
        upload, image_type = checked_image(image_file, settings)
        image_name = display_name(upload.filename)
        try:
            stored = store_upload(
                objects,
                file=upload.file,
                image_type=image_type,
                image_name=image_name,
                max_bytes=settings.max_upload_bytes,
            )
        except UploadTooLargeError as exc:
            raise HTTPException(413, too_large_message(settings.max_upload_bytes)) from exc
        except BucketUnavailableError as exc:
            raise _not_stored(exc) from exc
    except HTTPException as exc:
        UPLOADS.labels(_UPLOAD_OUTCOMES.get(exc.status_code, "bad_request")).inc()
        raise
    UPLOADS.labels("accepted").inc()
    image_id = image_id_for(stored.key, stored.version)
    return UploadAccepted(
        image_id=image_id, image_name=image_name, status_url=f"/api/images/{image_id}"
    )


def _not_stored(exc: BucketUnavailableError) -> HTTPException:
    """507 when the disk is full, else 503: both say why, and when to try again."""
    return HTTPException(
        507 if isinstance(exc, BucketFullError) else 503,
        f"The image was not stored: {exc}. Nothing was kept; send it again later.",
        headers={"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)},
    )
