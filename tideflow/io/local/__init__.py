"""The local stack's bucket and file-change stream: a folder plus a SQLite journal."""

from tideflow.io.local.bucket import LocalBlob, LocalBucket, LocalBucketClient
from tideflow.io.local.stream import LocalFileChangeStream, LocalJournalSource

__all__ = [
    "LocalBlob",
    "LocalBucket",
    "LocalBucketClient",
    "LocalFileChangeStream",
    "LocalJournalSource",
]
