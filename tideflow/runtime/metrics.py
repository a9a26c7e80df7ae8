"""Prometheus metrics of the run process (served at ``/metrics``)."""

from __future__ import annotations

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


class QueueCollector(Collector):
    """Reads queue depth (from each consumer's source) at scrape time, and failures (from
    its failure log) at most once per ``FAILURES_MAX_AGE_SECONDS``."""

    def __init__(self) -> None:
        self._sources: dict[str, tuple[Callable[[], SourceStats], Callable[[], int]]] = {}

    def watch(
        self, consumer: str, stats: Callable[[], SourceStats], failures: Callable[[], int]
    ) -> None:
        self._sources[consumer] = (stats, _Recent(failures, FAILURES_MAX_AGE_SECONDS))

    def clear(self) -> None:
        self._sources.clear()

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
        for consumer, (read_stats, count_failures) in self._sources.items():
            stats = read_stats()
            if stats.pending is not None:
                depth.add_metric([consumer, "pending"], stats.pending)
            if stats.in_flight is not None:
                depth.add_metric([consumer, "in_flight"], stats.in_flight)
            dead.add_metric([consumer], count_failures())
        yield depth
        yield dead


QUEUES = QueueCollector()
REGISTRY.register(QUEUES)
