"""``image_id``: a URL-safe name for one stored object version (bucket key + version).

Format: ``<key as unpadded URL-safe base64>.<version>``, e.g.
``dXBsb2Fkcy9hYjEyLmpwZw.7`` for ``uploads/ab12.jpg`` version 7 (a local or GCS
generation; on S3 a version id or ETag). It is reversible, so
status and thumbnail lookups need no index, and it only uses ``[A-Za-z0-9_-.]``, so it goes
into URLs and HTML attributes as is. A new version of a key (a file copied over an old one)
gets a new id, and so a row of its own.
"""

from __future__ import annotations

import base64
import binascii
import re

from tideflow.exceptions import InvalidKeyError
from tideflow.io.keys import validate_key

_IMAGE_ID = re.compile(r"(?P<key>[A-Za-z0-9_-]{2,1400})\.(?P<version>[A-Za-z0-9_-]{1,128})")


class InvalidImageIdError(ValueError):
    """The text is not an image id this app made."""


def image_id_for(key: str, version: str) -> str:
    encoded = base64.urlsafe_b64encode(key.encode()).rstrip(b"=").decode()
    return f"{encoded}.{version}"


def parse_image_id(image_id: str) -> tuple[str, str]:
    """``(key, version)`` of an id; the key is checked to be a safe bucket key."""
    match = _IMAGE_ID.fullmatch(image_id)
    if match is None:
        raise InvalidImageIdError(f"{image_id!r} is not an image id")
    encoded = match["key"]
    try:
        key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        validate_key(key)
    except (binascii.Error, UnicodeDecodeError, InvalidKeyError) as exc:
        raise InvalidImageIdError(f"{image_id!r} is not an image id") from exc
    # Only the canonical spelling: one object version has exactly one id.
    if image_id_for(key, match["version"]) != image_id:
        raise InvalidImageIdError(f"{image_id!r} is not an image id")
    return key, match["version"]
