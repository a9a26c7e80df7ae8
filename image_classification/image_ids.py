"""``image_id``: a URL-safe name for one stored object version (bucket key + version).

Format: ``<key as unpadded URL-safe base64>.<version>``, e.g.
``dXBsb2Fkcy9hYjEyLmpwZw.7`` for ``uploads/ab12.jpg`` version 7 (a local or GCS
generation; on S3 a version id or ETag). It is reversible, so status and thumbnail
lookups need no index, and it only uses ``[A-Za-z0-9_-.]``, so it goes into URLs and HTML
attributes as is. A new version of a key (a file copied over an old one) gets a new id,
and so a row of its own.

Versions are opaque to tideflow: an S3 version id may hold ``.``, ``+`` or ``/``. A version
made of ``[A-Za-z0-9_-]`` (at most 128 of them) goes into the id as it is; any other one,
or one starting with ``x-`` or ``h-`` (which could be mistaken for an encoded one), is
written ``x-<unpadded URL-safe base64>``. Ids stored before tideflow carried S3 versions
as they are used the same encoding, so they still read back to the same (key, version).
"""

from __future__ import annotations

import base64
import binascii
import re

from tideflow.exceptions import InvalidKeyError
from tideflow.io.keys import validate_key

# S3 version ids are at most 1,024 bytes: 1,368 characters in base64 with the prefix.
_IMAGE_ID = re.compile(r"(?P<key>[A-Za-z0-9_-]{2,1400})\.(?P<version>[A-Za-z0-9_-]{1,1400})")
_PLAIN_VERSION = re.compile(r"[A-Za-z0-9_-]{1,128}")
_ENCODED = "x-"
_RESERVED = (_ENCODED, "h-")


class InvalidImageIdError(ValueError):
    """The text is not an image id this app made."""


def _encoded(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def _decoded(text: str) -> str:
    """``UnicodeDecodeError`` or ``binascii.Error`` when it is not ``_encoded`` text."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def image_id_for(key: str, version: str) -> str:
    if _PLAIN_VERSION.fullmatch(version) and not version.startswith(_RESERVED):
        return f"{_encoded(key)}.{version}"
    return f"{_encoded(key)}.{_ENCODED}{_encoded(version)}"


def parse_image_id(image_id: str) -> tuple[str, str]:
    """``(key, version)`` of an id; the key is checked to be a safe bucket key."""
    match = _IMAGE_ID.fullmatch(image_id)
    if match is None:
        raise InvalidImageIdError(f"{image_id!r} is not an image id")
    version = match["version"]
    try:
        key = _decoded(match["key"])
        validate_key(key)
        if version.startswith(_ENCODED):
            version = _decoded(version.removeprefix(_ENCODED))
    except (binascii.Error, UnicodeDecodeError, InvalidKeyError) as exc:
        raise InvalidImageIdError(f"{image_id!r} is not an image id") from exc
    # Only the canonical spelling: one object version has exactly one id.
    if not version or image_id_for(key, version) != image_id:
        raise InvalidImageIdError(f"{image_id!r} is not an image id")
    return key, version
