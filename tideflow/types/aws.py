"""The aws stack's event type, under BuildFlow's name (no AWS SDK imported)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re

from tideflow.types import FileChangeEvent

VERSION_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
# Encoded version ids start with these; an ETag (hex, maybe "-N") never does.
ENCODED_PREFIX = "x-"
HASHED_PREFIX = "h-"


def s3_version(*, version_id: str | None, etag: str) -> str:
    """The event's ``version``: the version id on a versioned bucket, else the ETag.

    Versions must match ``[A-Za-z0-9_-]{1,128}`` (they end up in image ids). An ETag
    (hex MD5, ``-N`` for multipart uploads) always does; a version id that does not, or
    that starts with ``x-``/``h-``, is written ``x-<urlsafe base64>`` (reversible), or
    ``h-<sha256>`` when even that is too long (``S3Bucket.read_bytes`` finds it by listing).
    """
    if version_id and version_id != "null":
        if VERSION_PATTERN.fullmatch(version_id) and not version_id.startswith(
            (ENCODED_PREFIX, HASHED_PREFIX)
        ):
            return version_id
        encoded = ENCODED_PREFIX + base64.urlsafe_b64encode(version_id.encode()).decode().rstrip(
            "="
        )
        if len(encoded) <= 128:
            return encoded
        return HASHED_PREFIX + hashlib.sha256(version_id.encode()).hexdigest()
    cleaned = etag.strip().strip('"')
    if VERSION_PATTERN.fullmatch(cleaned):
        return cleaned
    return HASHED_PREFIX + hashlib.sha256(cleaned.encode()).hexdigest()


def decode_version(version: str) -> str | None:
    """The S3 version id an ``x-`` version stands for; None for other versions."""
    if not version.startswith(ENCODED_PREFIX):
        return None
    body = version[len(ENCODED_PREFIX) :]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


@dataclasses.dataclass(frozen=True)
class S3FileChangeEvent(FileChangeEvent):
    """An object was created or replaced in an S3 bucket (an ``ObjectCreated:*`` record).

    ``version`` is ``version_id`` on a versioned bucket, else the ``etag`` (without
    quotes): both are known when the upload returns, so ids can be computed then.
    ``sequencer`` orders events of one key (real S3 sends it; moto does not).
    ``metadata`` holds ``event_name`` and, when the record has them, nothing else: S3
    notifications carry no content type or user metadata (read them with a HEAD).
    """

    version_id: str | None = None
    etag: str = ""
    sequencer: str | None = None
