"""What ``tideflow status`` shows per consumer: its queue's counts and its failures."""

from __future__ import annotations

from tideflow.consumers import Consumer
from tideflow.io.strategies import Source

# consumer, pending, in flight, done (None where the queue cannot tell), failed
StatusRow = tuple[str, int | None, int | None, int | None, int]


def status_row(consumer: Consumer, source: Source) -> StatusRow:
    stats = source.stats()
    failed = consumer.sink.failure_log().count()
    return (consumer.name, stats.pending, stats.in_flight, stats.done, failed)
