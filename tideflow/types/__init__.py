"""Shared types: events that sources deliver and the aliases used across layers.

Each provider's own event type lives beside this module, named as BuildFlow names it:
``tideflow.types.local.LocalFileChangeEvent``, ``tideflow.types.gcp.GCSFileChangeEvent``,
``tideflow.types.aws.S3FileChangeEvent``. They import no cloud SDK.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any, Protocol

JSONDict = dict[str, Any]


class ObjectReader(Protocol):
    """What an event needs to fetch the bytes of the object it names."""

    def read_bytes(self, key: str, *, version: str | None = None) -> bytes: ...


@dataclasses.dataclass(frozen=True)
class FileChangeEvent:
    """An object was created or replaced in a bucket.

    ``version`` is the object's version as its provider names it (a local or GCS
    generation, an S3 version id or ETag). ``(bucket, file_path, version)`` identifies
    the object version: the same event delivered twice has the same identity, which
    sinks use to stay idempotent.
    """

    file_path: str
    bucket: str
    version: str
    size: int
    event_time: datetime.datetime
    metadata: JSONDict = dataclasses.field(default_factory=dict)
    reader: ObjectReader | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def event_id(self) -> str:
        return f"{self.bucket}/{self.file_path}#{self.version}"

    @property
    def blob(self) -> bytes:
        """The object's bytes, read from the bucket on each access.

        Raises ``ObjectSupersededError`` when a newer version replaced this one.
        """
        if self.reader is None:
            raise RuntimeError(f"event {self.event_id} carries no reader for its bucket")
        return self.reader.read_bytes(self.file_path, version=self.version)


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One leased delivery of an event: ack or nack it by ``ack_id``."""

    ack_id: str
    event: FileChangeEvent
    attempt: int


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """An event that failed too often (or could never succeed), with its last error."""

    id: str
    event: FileChangeEvent
    attempts: int
    error: str
    dead_at: datetime.datetime


@dataclasses.dataclass(frozen=True)
class SourceStats:
    """Cheap counts a source knows without pulling; None where it cannot tell.

    ``pending`` events wait (not in flight): the backlog autoscalers scale on;
    ``oldest_pending_seconds`` is how long the oldest of them has waited.
    """

    pending: int | None
    in_flight: int | None
    done: int | None
    oldest_pending_seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class Failure:
    """An event that was dead-lettered, as the failure log records it.

    ``state`` is ``dead``, or ``retried`` once it was sent back for delivery; the log is
    append-only (BigQuery's streaming buffer takes no updates), the newest entry wins.
    """

    event_id: str
    bucket: str
    file_path: str
    version: str
    size: int
    event_time: datetime.datetime
    metadata: str  # the event's metadata as JSON
    error: str
    attempts: int
    failed_at: datetime.datetime
    state: str = "dead"

    @classmethod
    def of_event(cls, event: FileChangeEvent, *, error: str, attempts: int) -> Failure:
        """The failure record of ``event``, failed now."""
        return cls(
            event_id=event.event_id,
            bucket=event.bucket,
            file_path=event.file_path,
            version=event.version,
            size=event.size,
            event_time=event.event_time,
            metadata=json.dumps(event.metadata, default=str),
            error=error,
            attempts=attempts,
            failed_at=datetime.datetime.now(datetime.UTC),
        )


@dataclasses.dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    # The query had more rows than the caller's ``max_rows`` (``TableReader.user_query``).
    truncated: bool = False

    def records(self) -> list[JSONDict]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]
