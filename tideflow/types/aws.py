"""The aws stack's event type, under BuildFlow's name (no AWS SDK imported)."""

from __future__ import annotations

import dataclasses

from tideflow.types import FileChangeEvent


def s3_version(*, version_id: str | None, etag: str) -> str:
    """The event's ``version``: the version id on a versioned bucket, else the ETag without
    quotes (hex MD5, ``-N`` for multipart uploads). Both are carried as S3 gives them: a
    version id may hold any character, and whoever puts versions into names or URLs
    encodes them."""
    if version_id and version_id != "null":
        return version_id
    return etag.strip().strip('"')


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
