"""The failure log: dead-lettered events, in a table beside the consumer's results.

The runtime records an event here when its source dead-letters it, so pages, APIs and
``tideflow status`` learn what failed with one cheap query instead of pulling from a
queue. The log is append-only (BigQuery's streaming buffer takes no updates or deletes):
sending a dead letter back appends a ``retried`` entry, and the newest entry of an event
wins. Writes are idempotent on (event, time), like every sink write.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime
from collections.abc import Iterable, Sequence

from tideflow.io.primitive import SinkPrimitive
from tideflow.io.strategies import DeadLetterQueue
from tideflow.types import Failure, FileChangeEvent

DEAD, RETRIED = "dead", "retried"
_COLUMNS = [f.name for f in dataclasses.fields(Failure)]


class FailureLog:
    def __init__(self, table: SinkPrimitive) -> None:
        self.table = table

    def record(self, event: FileChangeEvent, *, error: str, attempts: int) -> Failure:
        failure = Failure.of_event(event, error=error, attempts=attempts)
        self._append([failure])
        return failure

    def clear(self, failures: Iterable[Failure], *, at: datetime.datetime | None = None) -> None:
        """Mark these failures as sent back for delivery (``at``: when they were sent)."""
        now = at or datetime.datetime.now(datetime.UTC)
        self._append([dataclasses.replace(f, state=RETRIED, failed_at=now) for f in failures])

    def for_object(self, bucket: str, file_path: str) -> Failure | None:
        """The newest failure of any version of this object, unless it was retried."""
        found = self._latest(
            "file_path = $file_path AND bucket = $bucket",
            {"file_path": file_path, "bucket": bucket},
            limit=1,
        )
        return found[0] if found else None

    def list(self, *, limit: int = 100, offset: int = 0) -> list[Failure]:
        """Failed events, newest first."""
        return self._latest("TRUE", {}, limit=limit, offset=offset)

    def count(self) -> int:
        sql = (
            f"SELECT COUNT(*) FROM ({self._newest('TRUE')}) AS latest "
            f"WHERE _newest = 1 AND state = '{DEAD}'"
        )
        return int(self.table.reader().query(sql).rows[0][0])

    def _append(self, failures: builtins.list[Failure]) -> None:
        if failures:
            rows = [(f"{f.event_id}@{f.failed_at.isoformat()}", f) for f in failures]
            self.table.sink().write(rows)

    def _newest(self, condition: str) -> str:
        columns = ", ".join(_COLUMNS)
        return (
            f"SELECT {columns}, ROW_NUMBER() OVER (PARTITION BY event_id "
            f"ORDER BY failed_at DESC) AS _newest FROM {{table}} WHERE {condition}"
        )

    def _latest(
        self, condition: str, params: dict[str, str], *, limit: int, offset: int = 0
    ) -> builtins.list[Failure]:
        columns = ", ".join(_COLUMNS)
        sql = (
            f"SELECT {columns} FROM ({self._newest(condition)}) AS latest "
            f"WHERE _newest = 1 AND state = '{DEAD}' ORDER BY failed_at DESC "
            f"LIMIT {int(limit)} OFFSET {int(offset)}"
        )
        return [Failure(*row) for row in self.table.reader().query(sql, params).rows]


def retry_dead_letters(
    queue: DeadLetterQueue, failures: FailureLog, ids: Sequence[str] | None
) -> int:
    """Send dead letters (all when ``ids`` is None) back for delivery and mark their
    failures retried; how many were sent."""
    wanted = None if ids is None else set(ids)
    letters = [d for d in queue.list(limit=100_000) if wanted is None or d.id in wanted]
    # Marked retried as of before the send: a consumer that fails a sent-back event again
    # before the mark is written records a newer failure, which then wins.
    sent_at = datetime.datetime.now(datetime.UTC)
    retried = queue.retry(None if ids is None else [d.id for d in letters])
    events = {d.event.event_id for d in letters}
    failures.clear((f for f in failures.list(limit=100_000) if f.event_id in events), at=sent_at)
    return retried
