"""Object keys that are safe to store on any backend, a local folder included."""

from __future__ import annotations

import unicodedata

from tideflow.exceptions import InvalidKeyError

MAX_KEY_BYTES = 1024
RESERVED_PREFIX = ".tideflow"


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object name, else raise ``InvalidKeyError``."""
    if not isinstance(key, str) or not key:
        raise InvalidKeyError("object key is empty; give the object a name")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKeyError(f"object key is longer than {MAX_KEY_BYTES} bytes; shorten it")
    if any(unicodedata.category(ch) == "Cc" for ch in key):
        raise InvalidKeyError(f"object key {key!r} contains control characters; remove them")
    if key.startswith("/") or "\\" in key:
        raise InvalidKeyError(
            f"object key {key!r} must be a relative name with '/' separators, "
            "not an absolute or Windows path"
        )
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKeyError(
                f"object key {key!r} has an empty, '.' or '..' segment; "
                "keys cannot climb out of the bucket"
            )
    if key.startswith(RESERVED_PREFIX):
        raise InvalidKeyError(f"object keys starting with {RESERVED_PREFIX!r} are reserved")
    return key
