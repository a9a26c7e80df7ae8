"""Shared types: events that sources deliver and the aliases used across layers."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any, Protocol

JSONDict = dict[str, Any]


class ObjectReader(Protocol):
    """What an event needs to fetch the bytes of the object it names."""

    def read_bytes(self, key: str, *, generation: int | None = None) -> bytes: ...


@dataclasses.dataclass(frozen=True)
class FileChangeEvent:
    """An object was created or replaced in a bucket.

    ``(bucket, file_path, generation)`` identifies the object version: the same
    event delivered twice has the same identity, which sinks use to stay idempotent.
    """

    file_path: str
    bucket: str
    generation: int
    size: int
    event_time: datetime.datetime
    metadata: JSONDict = dataclasses.field(default_factory=dict)
    reader: ObjectReader | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def event_id(self) -> str:
        return f"{self.bucket}/{self.file_path}#{self.generation}"

    @property
    def blob(self) -> bytes:
        """The object's bytes, read from the bucket on each access."""
        if self.reader is None:
            raise RuntimeError(f"event {self.event_id} carries no reader for its bucket")
        return self.reader.read_bytes(self.file_path, generation=self.generation)


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
    pending: int
    in_flight: int
    done: int
    dead_lettered: int


@dataclasses.dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[JSONDict]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]
