"""Prometheus metrics of the run process (served at ``/metrics``)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from tideflow.types import SourceStats

EVENTS_PROCESSED = Counter(
    "tideflow_events_processed",
    "Events whose rows were written and acked.",
    ["consumer"],
)
EVENTS_FAILED = Counter(
    "tideflow_events_failed",
    "Event deliveries that failed and were nacked.",
    ["consumer"],
)
SINK_RETRIES = Counter(
    "tideflow_sink_retries",
    "Batch writes retried because the warehouse was unavailable.",
    ["consumer"],
)
PROCESSING_SECONDS = Histogram(
    "tideflow_event_processing_seconds",
    "Time the consumer function spent on one event.",
    ["consumer"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


# Counting failures is a warehouse query (billed by the data it reads on BigQuery), while
# scrapers ask every few seconds and /metrics answers whoever reaches the port: the count
# is read at most once per this many seconds.
FAILURES_MAX_AGE_SECONDS = 60.0


class _Recent:
    """``read()``'s answer, read again only once it is ``max_age`` seconds old."""

    def __init__(self, read: Callable[[], int], max_age: float) -> None:
        self._read = read
        self._max_age = max_age
        self._value: tuple[float, int] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            now = time.monotonic()
            if self._value is None or now - self._value[0] >= self._max_age:
                self._value = (now, self._read())
            return self._value[1]


@dataclasses.dataclass(frozen=True)
class _Watched:
    stats: Callable[[], SourceStats]
    failures: Callable[[], int]
    replicas: Callable[[], int]


class QueueCollector(Collector):
    """Reads, at scrape time, each consumer's queue (its source's stats) and ready replicas
    (what KEDA, an HPA or ECS scale on), and its failures (its failure log) at most once per
    ``FAILURES_MAX_AGE_SECONDS``.

    ``tideflow_consumer_backlog`` (events waiting, not in flight) and
    ``tideflow_consumer_oldest_pending_seconds`` are left out where the source cannot
    tell them (Pub/Sub without Cloud Monitoring; the oldest's age on SQS).
    """

    def __init__(self) -> None:
        self._consumers: dict[str, _Watched] = {}

    def watch(
        self,
        consumer: str,
        stats: Callable[[], SourceStats],
        failures: Callable[[], int],
        replicas: Callable[[], int],
    ) -> None:
        self._consumers[consumer] = _Watched(
            stats, _Recent(failures, FAILURES_MAX_AGE_SECONDS), replicas
        )

    def clear(self) -> None:
        self._consumers.clear()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "tideflow_queue_depth",
            "Events waiting or in flight.",
            labels=["consumer", "state"],
        )
        dead = GaugeMetricFamily(
            "tideflow_dead_letters",
            "Events dead-lettered and not sent back since.",
            labels=["consumer"],
        )
        replicas = GaugeMetricFamily(
            "tideflow_consumer_replicas",
            "Replicas ready to take events (started ones count once ready).",
            labels=["consumer"],
        )
        backlog = GaugeMetricFamily(
            "tideflow_consumer_backlog",
            "Events waiting for a replica, not in flight.",
            labels=["consumer"],
        )
        oldest = GaugeMetricFamily(
            "tideflow_consumer_oldest_pending_seconds",
            "Age of the oldest waiting event.",
            labels=["consumer"],
        )
        for consumer, watched in self._consumers.items():
            stats = watched.stats()
            if stats.pending is not None:
                depth.add_metric([consumer, "pending"], stats.pending)
                backlog.add_metric([consumer], stats.pending)
            if stats.in_flight is not None:
                depth.add_metric([consumer, "in_flight"], stats.in_flight)
            if stats.oldest_pending_seconds is not None:
                oldest.add_metric([consumer], stats.oldest_pending_seconds)
            dead.add_metric([consumer], watched.failures())
            replicas.add_metric([consumer], watched.replicas())
        yield from (depth, dead, replicas, backlog, oldest)


QUEUES = QueueCollector()
REGISTRY.register(QUEUES)
