"""In-memory source and sink, for tests of consumers and of the runtime.

``MemorySource`` keeps the local stream's delivery rules (leases, attempts, dead letters)
without a journal; ``MemorySink`` keeps rows in a dict keyed by row id, so it is
idempotent like the real sinks, and can be told to fail, wholly or row by row;
``MemoryFailures`` records dead-lettered events as a failure log would. Nothing survives
the process.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from tideflow.exceptions import RowError, SinkError, SourceError, SourceUnavailableError
from tideflow.io.strategies import Sink, Source
from tideflow.types import Delivery, Failure, FileChangeEvent, SourceStats


class MemorySource(Source):
    def __init__(self, *, max_attempts: int = 5, lease_seconds: float = 60.0) -> None:
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._events: dict[str, FileChangeEvent] = {}
        self._attempts: dict[str, int] = {}
        self._leased_until: dict[str, float] = {}
        self.acked: list[str] = []
        self.dead: dict[str, str] = {}
        self.failing_pulls = 0  # the next N pulls raise SourceError, like an outage
        self.failing_acks = 0  # the next N acks raise SourceUnavailableError (a full journal)

    def publish(self, event: FileChangeEvent) -> str:
        with self._lock:
            ack_id = str(next(self._ids))
            self._events[ack_id] = event
            self._attempts[ack_id] = 0
            return ack_id

    def pull(self, *, max_messages: int, timeout: float) -> list[Delivery]:
        if self.failing_pulls > 0:
            self.failing_pulls -= 1
            raise SourceError("memory source: simulated outage")
        now = time.monotonic()
        with self._lock:
            ready = [
                ack_id
                for ack_id in self._events
                if ack_id not in self.dead and self._leased_until.get(ack_id, 0) < now
            ][:max_messages]
            for ack_id in ready:
                self._attempts[ack_id] += 1
                self._leased_until[ack_id] = now + self.lease_seconds
            deliveries = [Delivery(i, self._events[i], self._attempts[i]) for i in ready]
        if not deliveries and timeout > 0:
            time.sleep(min(timeout, 0.05))
        return deliveries

    def ack(self, ack_ids: Sequence[str]) -> None:
        if self.failing_acks > 0:
            self.failing_acks -= 1
            raise SourceUnavailableError("memory source: simulated full journal")
        with self._lock:
            for ack_id in ack_ids:
                if self._events.pop(ack_id, None) is not None:
                    self.acked.append(ack_id)

    def nack(self, ack_id: str, *, error: str, retryable: bool = True) -> bool:
        with self._lock:
            if ack_id not in self._events:
                return False
            self._leased_until[ack_id] = 0
            if not retryable or self._attempts[ack_id] >= self.max_attempts:
                self.dead[ack_id] = error
                return True
            return False

    def extend(self, ack_ids: Sequence[str], *, seconds: float) -> None:
        with self._lock:
            for ack_id in ack_ids:
                if ack_id in self._events:
                    self._leased_until[ack_id] = time.monotonic() + seconds

    def stats(self) -> SourceStats:
        with self._lock:
            now = time.monotonic()
            live = [i for i in self._events if i not in self.dead]
            in_flight = sum(self._leased_until.get(i, 0) >= now for i in live)
            return SourceStats(len(live) - in_flight, in_flight, len(self.acked))


class MemorySink(Sink):
    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}
        self.fail_with: str | None = None
        self.reject: Callable[[Any], str | None] = lambda row: None  # a reason refuses a row

    def write(self, rows: Sequence[tuple[str, Any]]) -> None:
        if self.fail_with is not None:
            raise SinkError(self.fail_with)
        rejected = {row_id: why for row_id, row in rows if (why := self.reject(row))}
        for row_id, row in rows:
            if row_id not in rejected:
                self.rows.setdefault(row_id, row)
        if rejected:
            raise RowError(f"{len(rejected)} row(s) refused", rejected=rejected)


class MemoryFailures:
    """A failure log in a list."""

    def __init__(self) -> None:
        self.recorded: list[Failure] = []

    def record(self, event: FileChangeEvent, *, error: str, attempts: int) -> Failure:
        failure = Failure.of_event(event, error=error, attempts=attempts)
        self.recorded.append(failure)
        return failure
