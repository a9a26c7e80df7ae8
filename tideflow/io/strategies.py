"""Run-time strategies: how a bucket is read and written, a stream read, a table written
and a warehouse queried. Each base method fails with a message naming what is missing."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from tideflow.exceptions import InvalidQueryError
from tideflow.types import DeadLetter, Delivery, QueryResult, SourceStats


@dataclasses.dataclass(frozen=True)
class StoredObject:
    """One object version in a bucket."""

    key: str
    version: str
    size: int
    updated: datetime.datetime
    content_type: str | None = None
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)


class ObjectStore:
    """Portable access to a bucket's objects: the same calls on every stack.

    ``put`` returns once the object is stored (and, on the local stack, its event
    journaled); its ``version`` is the one the object's file-change event will carry.
    """

    bucket_name: str

    def put(
        self,
        key: str,
        data: IO[bytes],
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        size: int | None = None,
    ) -> StoredObject:
        raise NotImplementedError(f"{type(self).__name__} must implement put()")

    def get(self, key: str, *, version: str | None = None) -> bytes:
        """The object's bytes (``version``'s, or the current); ``ObjectNotFoundError``."""
        raise NotImplementedError(f"{type(self).__name__} must implement get()")

    def stat(self, key: str) -> StoredObject | None:
        raise NotImplementedError(f"{type(self).__name__} must implement stat()")

    def list(self, *, prefix: str = "") -> Iterator[StoredObject]:
        raise NotImplementedError(f"{type(self).__name__} must implement list()")


class Source:
    """Leased, at-least-once delivery of events; it only delivers.

    A pulled delivery is invisible to other pullers until its lease runs out; ``ack``
    after the sink committed, ``nack`` to have it redelivered (or dead-lettered after
    ``max_attempts``), ``extend`` while it is still being worked on. What failed is
    recorded by the runtime in the sink's failure log, not read back from the queue.
    """

    max_attempts: int = 5

    def start(self) -> None:
        """Begin background work (watchers, reconciliation). Optional."""

    def close(self) -> None:
        """Stop background work and release connections. Optional."""

    def pull(self, *, max_messages: int, timeout: float) -> list[Delivery]:
        raise NotImplementedError(f"{type(self).__name__} must implement pull()")

    def ack(self, ack_ids: Sequence[str]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement ack()")

    def nack(self, ack_id: str, *, error: str, retryable: bool = True) -> bool:
        """Hand a failed delivery back; True when this dead-lettered it (not retryable,
        or its attempts are used up)."""
        raise NotImplementedError(f"{type(self).__name__} must implement nack()")

    def extend(self, ack_ids: Sequence[str], *, seconds: float) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement extend()")

    def release_all(self) -> int:
        """Make every leased event available again (after a crash). Optional."""
        return 0

    def stats(self) -> SourceStats:
        """Counts the source knows cheaply (never by pulling); None where it cannot tell."""
        return SourceStats(pending=None, in_flight=None, done=None)


class DeadLetterQueue:
    """Where a stream's dead letters wait: listed and sent back by ``tideflow dead-letters``."""

    def list(self, *, limit: int = 100) -> list[DeadLetter]:
        raise NotImplementedError(f"{type(self).__name__} must implement list()")

    def retry(self, ids: Sequence[str] | None = None) -> int:
        """Send dead letters (all when ``ids`` is None) back for delivery; returns how many."""
        raise NotImplementedError(f"{type(self).__name__} must implement retry()")

    def count(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement count()")


class Sink:
    """Idempotent writes: a row id seen before is skipped, so redelivery adds no row."""

    def write(self, rows: Sequence[tuple[str, Any]]) -> None:
        """Write ``(row_id, row)`` pairs in one transaction.

        ``RowError`` names rows the warehouse refused while it kept the others;
        any other ``SinkError`` means nothing of the batch is known to be written.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement write()")

    def close(self) -> None:
        """Release connections. Optional."""


# Paging bounds every warehouse accepts. DuckDB, BigQuery and PostgreSQL take 64-bit
# LIMIT/OFFSET values, but DuckDB fails on LIMIT + OFFSET past 2**63 and Python ints are
# unbounded: a client's ``offset=10**30`` must be refused before it reaches SQL.
MAX_SELECT_LIMIT = 10_000
MAX_SELECT_OFFSET = 1_000_000_000
DEFAULT_QUERY_ROWS = 1_000
# Rows ``user_query`` hands back at most: they are built in memory (and sent as JSON from
# the run process); the whole table goes to a file with ``export`` instead.
MAX_QUERY_ROWS = 100_000


def check_paging(limit: int, offset: int) -> None:
    """Raise ``InvalidQueryError`` unless ``0 <= limit <= MAX_SELECT_LIMIT`` and
    ``0 <= offset <= MAX_SELECT_OFFSET``."""
    if not 0 <= limit <= MAX_SELECT_LIMIT:
        raise InvalidQueryError(f"limit must be between 0 and {MAX_SELECT_LIMIT}, got {limit}")
    if not 0 <= offset <= MAX_SELECT_OFFSET:
        raise InvalidQueryError(f"offset must be between 0 and {MAX_SELECT_OFFSET}, got {offset}")


@dataclasses.dataclass(frozen=True)
class ItemFilter:
    """Rows where some item of the list column ``column`` matches.

    An item matches when its ``field`` equals ``value`` (case-insensitive; any value when
    None), or contains it when ``contains`` is set, and its ``score_field`` is at least
    ``min_score`` (when both are given): the score applies to the matching item.
    """

    column: str
    field: str
    value: str | None = None
    # Keyword-only: ``ItemFilter("labels", "label", "cat", "confidence", 0.5)`` would
    # silently put "confidence" into ``contains``.
    _: dataclasses.KW_ONLY
    contains: bool = False
    score_field: str | None = None
    min_score: float | None = None


class TableReader:
    """Read access to a table, portable across warehouses through ``select``/``count``.

    ``query`` runs the warehouse's own SQL; ``{table}`` in it is replaced by the table's
    full name and ``$name`` placeholders take ``params``.
    """

    table_ref: str

    def query(self, sql: str, params: dict[str, Any] | None = None) -> QueryResult:
        raise NotImplementedError(f"{type(self).__name__} must implement query()")

    def user_query(
        self, sql: str, *, allow_writes: bool = False, max_rows: int = DEFAULT_QUERY_ROWS
    ) -> QueryResult:
        """Someone's own SQL (``tideflow query``), unlike ``query``'s, which is the app's.

        One statement: a read (SELECT, WITH...), or with ``allow_writes`` a row change
        (INSERT, UPDATE, DELETE), never a schema change; reads run in the warehouse's
        read-only mode where it has one, with no file access. At most ``max_rows`` rows
        come back, ``truncated`` when there were more. Anything else is an
        ``InvalidQueryError``.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement user_query()")

    def select(
        self,
        *,
        where: dict[str, Any] | None = None,
        item: ItemFilter | None = None,
        order_by: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> QueryResult:
        """Rows (without tideflow's row id), newest ``order_by`` first.

        Every implementation calls ``check_paging(limit, offset)`` first, so out-of-range
        paging is an ``InvalidQueryError`` on every stack, never a warehouse error.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement select()")

    def count(self, *, where: dict[str, Any] | None = None, item: ItemFilter | None = None) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement count()")

    def export(
        self,
        path: Path,
        fmt: str,
        *,
        item: ItemFilter | None = None,
        order_by: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Write the matching rows (newest ``order_by`` first) to ``path`` as ``csv``,
        ``parquet`` or ``jsonl``; how many. Writes ``pages`` unless overridden;
        ``progress`` is called with the running count."""
        from tideflow.io.export import export_pages

        return export_pages(self, path, fmt, item=item, order_by=order_by, progress=progress)

    def pages(
        self,
        *,
        item: ItemFilter | None = None,
        order_by: str | None = None,
        page_rows: int | None = None,
    ) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        """``(columns, rows)`` pages of the matching rows, newest ``order_by`` first, for
        ``export``: ``select`` page by page unless overridden (a warehouse that bills every
        query by the data it scans reads one query's result in pages instead)."""
        from tideflow.io.export import PAGE_ROWS, select_pages

        return select_pages(self, item=item, order_by=order_by, page_rows=page_rows or PAGE_ROWS)
