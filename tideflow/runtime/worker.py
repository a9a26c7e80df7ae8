"""The pull -> process -> write -> ack loop that feeds one replica."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tideflow.exceptions import SourceError
from tideflow.io.strategies import Sink, Source
from tideflow.runtime import metrics
from tideflow.runtime.replica import Outcome, ReplicaError, ReplicaProcess
from tideflow.types import Delivery

logger = logging.getLogger("tideflow.consumer")


class ConsumerWorker(threading.Thread):
    """Feeds batches of leased events to one replica and commits what it returns.

    Rows are written before the events are acked, and row ids derive from the event
    identity, so a crash anywhere in between leads to a redelivery that writes nothing.
    """

    def __init__(
        self,
        *,
        replica: ReplicaProcess,
        source: Source,
        sink: Sink,
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
        self.batch_size = batch_size
        self.lease_seconds = lease_seconds
        self.event_timeout = event_timeout
        self._stop_event = stop
        self._on_fatal = on_fatal
        self._consumer = replica.spec.consumer_name

    def run(self) -> None:
        try:
            self.replica.start(timeout=self.event_timeout, should_stop=self._stop_event.is_set)
            while not self._stop_event.is_set():
                try:
                    deliveries = self.source.pull(max_messages=self.batch_size, timeout=0.5)
                except SourceError as exc:  # e.g. the queue service is briefly unreachable
                    logger.warning("%s: pull failed, retrying in 1s: %s", self._consumer, exc)
                    self._stop_event.wait(1.0)
                    continue
                if deliveries:
                    self._handle(deliveries)
        except ReplicaError as exc:  # the replica could not build its dependencies
            self._on_fatal(str(exc))
        except Exception as exc:
            # A worker that cannot go on must stop the run loudly, not vanish.
            logger.exception("worker %s failed", self.name)
            self._on_fatal(f"{type(exc).__name__}: {exc}")
        finally:
            self.replica.stop()

    def _handle(self, deliveries: list[Delivery]) -> None:
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
        rows = [
            (f"{d.event.event_id}:{i}", row)
            for d, o in pairs
            if o.ok
            for i, row in enumerate(o.rows)
        ]
        try:
            self.sink.write(rows)
        except Exception as exc:
            logger.error("%s: %s", self._consumer, exc)
            committed = False
        else:
            committed = True
            self._tolerate("ack", self.source.ack, [d.ack_id for d, o in pairs if o.ok])
        for delivery, outcome in pairs:
            metrics.PROCESSING_SECONDS.labels(self._consumer).observe(outcome.seconds)
            if not outcome.ok:
                self._nack(delivery, outcome.error or "failed", retryable=outcome.retryable)
                self._log(delivery, outcome, "failed")
            elif committed:
                metrics.EVENTS_PROCESSED.labels(self._consumer).inc()
                self._log(delivery, outcome, "ok")
            else:
                self._nack(delivery, "sink write failed", retryable=True)
                self._log(delivery, outcome, "not written")

    def _nack(self, delivery: Delivery, error: str, *, retryable: bool) -> None:
        metrics.EVENTS_FAILED.labels(self._consumer).inc()
        self._tolerate("nack", self.source.nack, delivery.ack_id, error=error, retryable=retryable)

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
            "%s key=%s generation=%s attempt=%d outcome=%s rows=%d latency_ms=%.1f%s",
            self._consumer,
            delivery.event.file_path,
            delivery.event.generation,
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
