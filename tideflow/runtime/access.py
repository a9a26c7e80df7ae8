"""What commands and scripts read of a flow: its tables, its consumers' dead letters and
their status, either in this process (``LocalAccess``) or through the running app
(``tideflow.runtime.admin_client.RemoteAccess``).

DuckDB lets one process open its file, so while ``tideflow run`` holds it every read
goes through the run's admin socket, which serves a ``LocalAccess`` of its own.
``tideflow.project`` picks one of the two when a project is opened; callers never
branch again (as HTTPX picks its transport when a client is made).

Light at import: ``tideflow status`` uses the remote side without importing the flow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from tideflow.exceptions import ConfigError
from tideflow.io.failures import FailureLog, retry_dead_letters
from tideflow.io.primitive import SinkPrimitive
from tideflow.io.strategies import DeadLetterQueue, Source, TableReader
from tideflow.types import DeadLetter

if TYPE_CHECKING:
    from tideflow.consumers import Consumer
    from tideflow.flow import Flow

# consumer, pending, in flight, done (None where the queue cannot tell), failed
StatusRow = tuple[str, int | None, int | None, int | None, int]


class FlowAccess:
    """Reads of one flow, wherever they run; each method names what is missing."""

    def table(self, name: str) -> TableReader:
        """The flow's table called ``name`` (a consumer's, its failure log, or one the
        flow manages)."""
        raise NotImplementedError(f"{type(self).__name__} must implement table()")

    def dead_letters(self, consumer: str) -> DeadLetterQueue:
        """The dead letters of consumer ``consumer``: ``retry`` also marks their failures
        retried in its failure log (``ConsumerDeadLetters``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement dead_letters()")

    def status(self) -> list[StatusRow]:
        """One row per consumer: its queue's counts and its failures."""
        raise NotImplementedError(f"{type(self).__name__} must implement status()")


class ConsumerDeadLetters(DeadLetterQueue):
    """A consumer's stream's dead letters, whose ``retry`` also marks the events retried
    in the consumer's failure log (so pages and ``status`` stop counting them)."""

    def __init__(self, queue: DeadLetterQueue, failures: FailureLog) -> None:
        self.queue = queue
        self.failures = failures

    def list(self, *, limit: int = 100) -> list[DeadLetter]:
        return self.queue.list(limit=limit)

    def retry(self, ids: Sequence[str] | None = None) -> int:
        return retry_dead_letters(self.queue, self.failures, ids)

    def count(self) -> int:
        return self.queue.count()


def status_row(consumer: Consumer, source: Source) -> StatusRow:
    stats = source.stats()
    failed = consumer.sink.failure_log().count()
    return (consumer.name, stats.pending, stats.in_flight, stats.done, failed)


def flow_table(flow: Flow, name: str) -> SinkPrimitive:
    """The flow's table called ``name``; ``ConfigError`` listing them when there is none."""
    tables = [p for p in flow.primitives() if isinstance(p, SinkPrimitive)]
    found = [table for table in tables if table.table_name == name]
    if len(found) == 1:
        return found[0]
    if found:
        ids = ", ".join(table.primitive_id() for table in found)
        raise ConfigError(f"the flow has {len(found)} tables named {name!r} ({ids})")
    names = ", ".join(table.table_name for table in tables) or "none"
    raise ConfigError(f"the flow has no table named {name!r}; its tables: {names}")


class LocalAccess(FlowAccess):
    """Reads in this process. The run process passes its started ``sources`` (by
    consumer name), so ``status`` counts what it delivers; elsewhere each status opens
    the consumer's source."""

    def __init__(self, flow: Flow, *, sources: Mapping[str, Source] | None = None) -> None:
        self.flow = flow
        self._sources = dict(sources or {})
        # Readers and queues may hold clients (BigQuery, SQS): made once per name.
        self._tables: dict[str, TableReader] = {}
        self._dead_letters: dict[str, DeadLetterQueue] = {}

    def table(self, name: str) -> TableReader:
        if name not in self._tables:
            self._tables[name] = flow_table(self.flow, name).reader()
        return self._tables[name]

    def dead_letters(self, consumer: str) -> DeadLetterQueue:
        if consumer not in self._dead_letters:
            declared = self.flow.consumer_named(consumer)
            self._dead_letters[consumer] = ConsumerDeadLetters(
                declared.source.dead_letter_queue(), declared.sink.failure_log()
            )
        return self._dead_letters[consumer]

    def status(self) -> list[StatusRow]:
        return [
            status_row(c, self._sources.get(c.name) or c.source.source())
            for c in self.flow.consumers
        ]
