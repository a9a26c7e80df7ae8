"""The pull -> process -> write -> ack loop that feeds one replica."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

from tideflow.exceptions import (
    ReplicaError,
    RowError,
    SinkError,
    SinkUnavailableError,
    SourceError,
    SourceUnavailableError,
)
from tideflow.io.strategies import Sink, Source
from tideflow.runtime import metrics
from tideflow.runtime.replica import Outcome, ReplicaKilledError, ReplicaProcess
from tideflow.types import Delivery, Failure, FileChangeEvent

logger = logging.getLogger("tideflow.consumer")

# Backoff of writes while the warehouse is unavailable: 0.5 s, doubling, at most 30 s.
SINK_RETRY_FIRST_SECONDS = 0.5
SINK_RETRY_MAX_SECONDS = 30.0
# How often leases are extended while a write runs (sources renew only once half a lease
# has passed, so this costs no call per beat).
LEASE_HEARTBEAT_SECONDS = 2.0
# Backoff of acks and nacks while the source cannot take them (the local journal's disk is
# full): 0.5 s, doubling, at most 5 s, so the worker resumes soon after space is freed.
SOURCE_RETRY_FIRST_SECONDS = 0.5
SOURCE_RETRY_MAX_SECONDS = 5.0

T = TypeVar("T")


class FailureRecorder(Protocol):
    """Where dead-lettered events are recorded (``FailureLog``)."""

    def record(self, event: FileChangeEvent, *, error: str, attempts: int) -> Failure: ...


class ConsumerWorker(threading.Thread):
    """Feeds batches of leased events to one replica and commits what it returns.

    Rows are written before the events are acked, and row ids derive from the event
    identity, so a crash anywhere in between leads to a redelivery that writes nothing.
    An event its source dead-letters is recorded in ``failures`` with its error.

    Setting ``stop`` (``halt()``) stops the pulling: the batch in hand is finished (rows
    written, events acked) or, while the warehouse is unavailable, handed back; then the
    replica stops. ``events_done`` (acked or dead-lettered) and ``busy_seconds`` (spent on
    batches) are what the autoscaler measures.
    """

    def __init__(
        self,
        *,
        replica: ReplicaProcess,
        source: Source,
        sink: Sink,
        failures: FailureRecorder,
        batch_size: int,
        lease_seconds: float,
        event_timeout: float,
        stop: threading.Event,
        on_fatal: Callable[[str], None],
    ) -> None:
        super().__init__(name=f"tideflow-worker-{replica.name}", daemon=True)
        self.replica = replica
        self.source = source
        self.sink = sink
        self.failures = failures
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.event_timeout = event_timeout
        self._stop_event = stop
        self._on_fatal = on_fatal
        self._consumer = replica.spec.consumer_name
        # Written by this thread only; read by the autoscaler.
        self.events_done = 0
        self._busy_seconds = 0.0
        self._batch_started: float | None = None
        self._busy_lock = threading.Lock()

    def halt(self) -> None:
        """Stop after the batch in hand (see the class docstring); does not wait."""
        self._stop_event.set()

    def busy_seconds(self) -> float:
        """Seconds spent on batches so far, the one in hand included."""
        with self._busy_lock:
            started = self._batch_started
            return self._busy_seconds + (0.0 if started is None else time.monotonic() - started)

    def run(self) -> None:
        try:
            try:
                self.replica.start(timeout=self.event_timeout, should_stop=self._stop_event.is_set)
            except ReplicaKilledError as exc:  # not a broken setup: try again
                logger.error("%s; restarting it", exc)
                self._restart()
            while not self._stop_event.is_set():
                if not self.replica.alive:
                    # Died while idle (OOM killer, kill -9): restart it now, before an event
                    # is handed to it and burns one of its delivery attempts.
                    logger.error(
                        "replica %s died while idle (exit code %s); restarting it",
                        self.replica.name,
                        self.replica.exitcode,
                    )
                    self._restart()
                    continue
                try:
                    deliveries = self.source.pull(max_messages=self.batch_size, timeout=0.5)
                except SourceError as exc:  # e.g. the queue service is briefly unreachable
                    logger.warning("%s: pull failed, retrying in 1s: %s", self._consumer, exc)
                    self._stop_event.wait(1.0)
                    continue
                if deliveries:
                    self._busy(True)
                    try:
                        self._handle(deliveries)
                    finally:
                        self._busy(False)
        except ReplicaError as exc:  # the replica could not build its dependencies
            self._on_fatal(str(exc))
        except Exception as exc:
            # A worker that cannot go on must stop the run loudly, not vanish.
            logger.exception("worker %s failed", self.name)
            self._on_fatal(f"{type(exc).__name__}: {exc}")
        finally:
            self.replica.stop()

    def _busy(self, busy: bool) -> None:
        with self._busy_lock:
            now = time.monotonic()
            if self._batch_started is not None:
                self._busy_seconds += now - self._batch_started
            self._batch_started = now if busy else None

    def _handle(self, deliveries: list[Delivery]) -> None:
        exhausted = [d for d in deliveries if d.attempt > self.source.max_attempts]
        for delivery in exhausted:
            # Its earlier attempts never came back: the replica died on it every time.
            error = (
                f"the consumer never finished it in {delivery.attempt - 1} attempt(s) "
                "(its replica crashed or timed out)"
            )
            self._nack(delivery, error, retryable=False)
        deliveries = [d for d in deliveries if d.attempt <= self.source.max_attempts]
        if not deliveries:
            return
        ack_ids = [d.ack_id for d in deliveries]
        try:
            outcomes = self.replica.process_batch(
                [d.event for d in deliveries],
                timeout=self.event_timeout * len(deliveries),
                heartbeat=lambda: self._tolerate(
                    "extend", self.source.extend, ack_ids, seconds=self.lease_seconds
                ),
            )
        except ReplicaError as exc:
            logger.error("%s; its %d event(s) will be redelivered", exc, len(deliveries))
            for delivery in deliveries:
                self._nack(delivery, str(exc), retryable=True)
            self._restart()
            return
        pairs = list(zip(deliveries, outcomes, strict=True))
        rows = {
            d.ack_id: [(row_id(d.event.event_id, i, row), row) for i, row in enumerate(o.rows)]
            for d, o in pairs
            if o.ok
        }
        refused = self._write(
            [row for event_rows in rows.values() for row in event_rows], ack_ids=ack_ids
        )
        acked: list[Delivery] = []
        for delivery, outcome in pairs:
            metrics.PROCESSING_SECONDS.labels(self._consumer).observe(outcome.seconds)
            own_refused = {
                written: why
                for written, _ in rows.get(delivery.ack_id, [])
                if isinstance(refused, RowError) and (why := refused.rejected.get(written))
            }
            if not outcome.ok:
                self._nack(delivery, outcome.error or "failed", retryable=outcome.retryable)
                self._log(delivery, outcome, "failed")
            elif own_refused:
                # The warehouse refused this event's own row: it would refuse it again.
                self._nack(delivery, "; ".join(sorted(set(own_refused.values()))), retryable=False)
                self._log(delivery, outcome, "refused")
            elif refused is not None and not isinstance(refused, RowError):
                self._nack(delivery, str(refused), retryable=True)
                self._log(delivery, outcome, "not written")
            else:
                acked.append(delivery)
                metrics.EVENTS_PROCESSED.labels(self._consumer).inc()
                self._log(delivery, outcome, "ok")
        if acked:
            ack_ids = [d.ack_id for d in acked]
            try:
                self._until_taken("acks", lambda: self.source.ack(ack_ids))
            except SourceError as exc:
                logger.warning(
                    "%s: ack failed (the events will be redelivered, their rows are "
                    "already written): %s",
                    self._consumer,
                    exc,
                )
        self.events_done += len(acked)

    def _until_taken(self, what: str, call: Callable[[], T]) -> T:
        """A source call (ack, nack) retried while the source cannot take it now."""
        return self._with_backoff(
            f"the event source cannot take {what}",
            call,
            SourceUnavailableError,
            first=SOURCE_RETRY_FIRST_SECONDS,
            most=SOURCE_RETRY_MAX_SECONDS,
        )

    def _with_backoff(
        self,
        what: str,
        call: Callable[[], T],
        unavailable: type[Exception],
        *,
        first: float,
        most: float,
        between: Callable[[], None] = lambda: None,
    ) -> T:
        """``call()``, again after ``first`` seconds, doubling up to ``most``, for as long as
        it raises ``unavailable``; a stop ends the waiting by raising the last error."""
        delay = first
        while True:
            try:
                return call()
            except unavailable as exc:
                if self._stop_event.is_set():
                    raise
                logger.warning("%s: %s, retrying in %.1fs: %s", self._consumer, what, delay, exc)
                between()
                self._stop_event.wait(delay)
                delay = min(delay * 2, most)

    def _write(self, rows: list[tuple[str, Any]], *, ack_ids: list[str]) -> SinkError | None:
        """Write the batch's rows; the error, when the sink refused some or all of them."""
        return self._stored(lambda: self.sink.write(rows), ack_ids=ack_ids)

    def _stored(self, store: Callable[[], object], *, ack_ids: list[str]) -> SinkError | None:
        """Run ``store`` (a write to the warehouse); the error when it failed.

        The deliveries' leases are extended from a timer all along: a write can wait on
        a lock or a dead connection for long. While the warehouse is unavailable
        (``SinkUnavailableError``: I/O, connection, failover) the write is retried with
        exponential backoff for as long as it takes: an outage burns no delivery attempt
        and dead-letters nothing. Only a stop gives up (the error is returned).
        """
        with self._leases_kept(ack_ids):
            try:
                self._with_backoff(
                    "the warehouse is unavailable",
                    store,
                    SinkUnavailableError,
                    first=SINK_RETRY_FIRST_SECONDS,
                    most=SINK_RETRY_MAX_SECONDS,
                    between=lambda: metrics.SINK_RETRIES.labels(self._consumer).inc(),
                )
            except SinkUnavailableError as exc:  # stopping: the batch goes back
                return exc
            except SinkError as exc:
                logger.error("%s: %s", self._consumer, exc)
                return exc
            except Exception as exc:
                logger.exception("%s: writing rows failed", self._consumer)
                return SinkError(f"writing rows failed: {type(exc).__name__}: {exc}")
            return None

    @contextlib.contextmanager
    def _leases_kept(self, ack_ids: list[str]) -> Iterator[None]:
        """Extend the leases of ``ack_ids`` every few seconds while the block runs. (An
        extend still running when the block ends is harmless: sources skip settled ids.)"""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(LEASE_HEARTBEAT_SECONDS):
                self._tolerate("extend", self.source.extend, ack_ids, seconds=self.lease_seconds)

        threading.Thread(target=beat, name=f"{self.name}-leases", daemon=True).start()
        try:
            yield
        finally:
            done.set()

    def _nack(self, delivery: Delivery, error: str, *, retryable: bool) -> None:
        metrics.EVENTS_FAILED.labels(self._consumer).inc()
        # Record a final failure before the nack: a crash in between then redelivers the
        # event past its attempts (dead-lettered and recorded again), never loses the record.
        final = not retryable or delivery.attempt >= self.source.max_attempts
        if final and not self._record(delivery, error):
            # Stopped while the warehouse was down: no dead letter without its record. Its
            # lease runs out (or shutdown hands it back) and a later delivery decides it.
            return
        try:
            dead = self._until_taken(
                "nacks",
                lambda: self.source.nack(delivery.ack_id, error=error, retryable=retryable),
            )
        except SourceError as exc:
            logger.warning("%s: nack failed (it will be redelivered): %s", self._consumer, exc)
            return
        if dead and not final:
            self._record(delivery, error)
        if dead:
            self.events_done += 1

    def _record(self, delivery: Delivery, error: str) -> bool:
        """Record a final failure, waiting out a warehouse outage as writes do; False
        when a stop came first."""
        problem = self._stored(
            lambda: self.failures.record(delivery.event, error=error, attempts=delivery.attempt),
            ack_ids=[delivery.ack_id],
        )
        if problem is None:
            return True
        logger.error(
            "%s: could not record the failure of %s: %s",
            self._consumer,
            delivery.event.event_id,
            problem,
        )
        return not isinstance(problem, SinkUnavailableError)

    def _tolerate(self, what: str, call: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        """Run a source call whose failure only delays things: the lease runs out, the
        event comes back, and the sink's row ids make a second write a no-op."""
        try:
            call(*args, **kwargs)
        except SourceError as exc:
            logger.warning(
                "%s: %s failed (the event will be redelivered): %s", self._consumer, what, exc
            )

    def _log(self, delivery: Delivery, outcome: Outcome, result: str) -> None:
        logger.info(
            "%s key=%s version=%s attempt=%d outcome=%s rows=%d latency_ms=%.1f%s",
            self._consumer,
            delivery.event.file_path,
            delivery.event.version,
            delivery.attempt,
            result,
            len(outcome.rows),
            outcome.seconds * 1000,
            f" error={outcome.error!r}" if outcome.error else "",
        )

    def _restart(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.replica.start(timeout=self.event_timeout, should_stop=self._stop_event.is_set)
                return
            except ReplicaError as exc:
                logger.error("restarting failed: %s; trying again in 2s", exc)
                time.sleep(2)


def row_id(event_id: str, index: int, row: Any) -> str:
    """The sink's idempotency key for a row: ``<event_id>:<index in the consumer's output>``,
    or ``<event_id>:<row.tideflow_row_key()>`` when the row's class defines that method.

    A row key lets one object version have several rows over time that are each written once:
    the image app keys its rows by model_id, so replaying an image to a new model adds a row
    beside the old one, and replaying it to the same model adds nothing.
    """
    key = getattr(row, "tideflow_row_key", None)
    return f"{event_id}:{key()}" if callable(key) else f"{event_id}:{index}"
