"""Run-time strategies: how a stream is read, a table written and a warehouse queried."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from tideflow.types import DeadLetter, Delivery, QueryResult, SourceStats


class Source:
    """Leased, at-least-once delivery of events.

    A pulled delivery is invisible to other pullers until its lease runs out; ``ack``
    after the sink committed, ``nack`` to have it redelivered (or dead-lettered after
    too many attempts), ``extend`` while it is still being worked on.
    """

    def start(self) -> None:
        """Begin background work (watchers, reconciliation). Optional."""

    def close(self) -> None:
        """Stop background work and release connections. Optional."""

    def pull(self, *, max_messages: int, timeout: float) -> list[Delivery]:
        raise NotImplementedError(f"{type(self).__name__} must implement pull()")

    def ack(self, ack_ids: Sequence[str]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement ack()")

    def nack(self, ack_id: str, *, error: str, retryable: bool = True) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement nack()")

    def extend(self, ack_ids: Sequence[str], *, seconds: float) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement extend()")

    def release_all(self) -> int:
        """Make every leased event available again (after a crash). Optional."""
        return 0

    def stats(self) -> SourceStats:
        raise NotImplementedError(f"{type(self).__name__} must implement stats()")

    def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        raise NotImplementedError(f"{type(self).__name__} must implement dead_letters()")

    def dead_letter_for(self, file_path: str) -> DeadLetter | None:
        """The dead letter of the newest event for ``file_path``, if it failed."""
        raise NotImplementedError(f"{type(self).__name__} must implement dead_letter_for()")

    def retry_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        """Send dead letters (all when ``ids`` is None) back for delivery; returns how many."""
        raise NotImplementedError(f"{type(self).__name__} must implement retry_dead_letters()")


class Sink:
    """Idempotent writes: a row id seen before is skipped, so redelivery adds no row."""

    def write(self, rows: Sequence[tuple[str, Any]]) -> None:
        """Write ``(row_id, row)`` pairs in one transaction."""
        raise NotImplementedError(f"{type(self).__name__} must implement write()")

    def close(self) -> None:
        """Release connections. Optional."""


@dataclasses.dataclass(frozen=True)
class ItemFilter:
    """Rows where some item of the list column ``column`` matches.

    An item matches when its ``field`` equals ``value`` (case-insensitive; any value when
    None) and its ``score_field`` is at least ``min_score`` (when both are given).
    """

    column: str
    field: str
    value: str | None = None
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

    def select(
        self,
        *,
        where: dict[str, Any] | None = None,
        item: ItemFilter | None = None,
        order_by: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> QueryResult:
        """Rows (without tideflow's row id), newest ``order_by`` first."""
        raise NotImplementedError(f"{type(self).__name__} must implement select()")

    def count(self, *, where: dict[str, Any] | None = None, item: ItemFilter | None = None) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement count()")
