"""The pull -> process -> write -> ack loop, with a real replica and in-memory I/O."""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import pytest

from tests.tideflow.conftest import TEXTFLOW
from tideflow import consumer
from tideflow.exceptions import ConfigError, SinkUnavailableError
from tideflow.io.duckdb import DuckDBDataset, DuckDBTable
from tideflow.io.memory import MemoryFailures, MemorySink, MemorySource
from tideflow.runtime.replica import ReplicaProcess, ReplicaSpec
from tideflow.runtime.worker import ConsumerWorker
from tideflow.types import Failure
from tideflow.types.local import LocalFileChangeEvent

Running = tuple[MemorySource, MemorySink, MemoryFailures]


class TextReader:
    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts

    def read_bytes(self, key: str, *, version: str | None = None) -> bytes:
        return self.texts[key].encode()


TEXTS = {"a.txt": "one two", "b.txt": "three", "bad.txt": "POISON"}


def _event(key: str, generation: int = 1) -> LocalFileChangeEvent:
    return LocalFileChangeEvent(
        file_path=key,
        bucket="memory",
        version=str(generation),
        size=len(TEXTS[key]),
        event_time=datetime.datetime.now(datetime.UTC),
        reader=TextReader(TEXTS),
    )


def _start_worker(
    source: MemorySource,
    sink: MemorySink,
    failures: MemoryFailures,
    stop: threading.Event,
    *,
    num_concurrency: int = 1,
) -> ConsumerWorker:
    spec = ReplicaSpec(
        entry_point="textflow:app",
        project_dir=str(TEXTFLOW),
        consumer_name="count_words",
        index=0,
        count=1,
        num_concurrency=num_concurrency,
        global_values={},
        log_level="WARNING",
    )
    worker = ConsumerWorker(
        replica=ReplicaProcess(spec),
        source=source,
        sink=sink,
        failures=failures,
        batch_size=4,
        lease_seconds=30,
        event_timeout=60,
        stop=stop,
        on_fatal=lambda message: pytest.fail(message),
    )
    worker.start()
    return worker


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEFLOW_HOME", str(tmp_path))
    # The run process has the flow imported (rows come back as its dataclasses).
    monkeypatch.syspath_prepend(str(TEXTFLOW))


@pytest.fixture
def running() -> Iterator[Running]:
    source, sink, failures = MemorySource(max_attempts=2), MemorySink(), MemoryFailures()
    stop = threading.Event()
    worker = _start_worker(source, sink, failures, stop)
    yield source, sink, failures
    stop.set()
    worker.join(15)
    assert not worker.is_alive()


def test_a_replica_runs_num_concurrency_events_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each call waits until 4 run at once: one at a time, each would time out and fail.
    monkeypatch.setenv("TEXTFLOW_TOGETHER", "4")
    source, sink, failures = MemorySource(max_attempts=1), MemorySink(), MemoryFailures()
    for n in range(4):
        source.publish(_event("a.txt", generation=n + 1))
    stop = threading.Event()
    worker = _start_worker(source, sink, failures, stop, num_concurrency=4)
    try:
        _wait(lambda: len(source.acked) == 4)
        assert not failures.recorded and len(sink.rows) == 4
    finally:
        stop.set()
        worker.join(15)


def _wait(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_rows_are_written_then_acked_and_failures_recorded(running: Running) -> None:
    source, sink, failures = running
    for key in ("a.txt", "b.txt", "bad.txt"):
        source.publish(_event(key))
    _wait(lambda: len(source.acked) == 2 and failures.recorded)
    assert sorted(sink.rows) == ["memory/a.txt#1:0", "memory/b.txt#1:0"]
    assert [w.text for w in sink.rows["memory/a.txt#1:0"].words] == ["one", "two"]
    (failure,) = failures.recorded
    assert (failure.file_path, failure.version, failure.attempts) == ("bad.txt", "1", 2)
    assert "cannot digest bad.txt" in failure.error


def test_a_failing_sink_acks_nothing_and_records_its_real_error(running: Running) -> None:
    source, sink, failures = running
    sink.fail_with = "disk full"
    source.publish(_event("a.txt"))
    _wait(lambda: bool(failures.recorded))
    assert source.acked == []
    assert sink.rows == {}
    assert failures.recorded[0].error == "disk full"


def test_a_refused_row_fails_only_its_own_event(running: Running) -> None:
    source, sink, failures = running
    sink.reject = lambda row: "field too long" if row.key == "b.txt" else None
    for key in ("a.txt", "b.txt"):
        source.publish(_event(key))
    _wait(lambda: len(source.acked) == 1 and failures.recorded)
    assert list(sink.rows) == ["memory/a.txt#1:0"]
    (failure,) = failures.recorded
    # Not retryable (the warehouse would refuse it again): dead at the first attempt.
    assert (failure.file_path, failure.attempts, failure.error) == ("b.txt", 1, "field too long")


def test_a_delivery_past_its_attempts_is_dead_lettered_unprocessed(running: Running) -> None:
    source, sink, failures = running
    ack_id = source.publish(_event("a.txt"))
    source._attempts[ack_id] = source.max_attempts  # its replica died on it every time
    _wait(lambda: bool(failures.recorded))
    assert sink.rows == {}
    assert "never finished it" in failures.recorded[0].error


def test_a_halted_worker_finishes_its_batch_before_its_replica_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the autoscaler's scale-down relies on: the batch in hand is written and acked
    (nothing handed back, nothing done twice), then the worker and its replica end."""
    monkeypatch.setenv("TEXTFLOW_DELAY", "0.3")  # a batch of 4 takes 1.2 s
    source, sink, failures = MemorySource(), MemorySink(), MemoryFailures()
    for n in range(6):
        source.publish(_event("a.txt", generation=n + 1))
    worker = _start_worker(source, sink, failures, threading.Event())
    _wait(lambda: worker.busy_seconds() > 0.1)  # the first batch (4 events) is in hand
    worker.halt()
    worker.join(15)
    assert not worker.is_alive() and not worker.replica.alive
    assert source.acked == ["1", "2", "3", "4"] and len(sink.rows) == 4
    assert worker.events_done == 4 and not failures.recorded
    assert source.stats().pending == 2  # the rest still wait for another replica


def test_a_source_outage_is_waited_out(running: Running) -> None:
    source, sink, _ = running
    source.failing_pulls = 2
    source.publish(_event("b.txt"))
    _wait(lambda: source.acked == ["1"])
    assert list(sink.rows) == ["memory/b.txt#1:0"]


def test_acks_the_source_cannot_take_are_retried_until_they_land(running: Running) -> None:
    """A full journal refuses acks: the worker retries with backoff, keeps running, and
    neither redelivers nor dead-letters the events once the ack lands."""
    source, sink, failures = running
    source.failing_acks = 3  # 0.5 + 1 + 2 s of backoff
    for key in ("a.txt", "b.txt"):
        source.publish(_event(key))
    _wait(lambda: len(source.acked) == 2)
    assert source.failing_acks == 0
    assert sorted(sink.rows) == ["memory/a.txt#1:0", "memory/b.txt#1:0"]
    assert failures.recorded == [] and source.dead == {}
    assert set(source._attempts.values()) == {1}  # delivered once each


def test_a_warehouse_outage_is_waited_out_with_backoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB writes fail (I/O errors) for a while: the worker retries with growing waits,
    extending the leases; nothing is nacked or dead-lettered, the rows land after recovery."""

    @dataclasses.dataclass
    class Count:
        key: str
        words: int

    class Outage:
        """The dataset's connection raises DuckDB's own I/O error until ``until``."""

        def __init__(self, real: object, until: float) -> None:
            self.real, self.until, self.attempts = real, until, []

        def cursor(self) -> object:
            self.attempts.append(time.monotonic())
            if time.monotonic() < self.until:
                raise duckdb.IOException("IO Error: could not write file: No space left")
            return self.real.cursor()  # type: ignore[attr-defined]

    monkeypatch.setenv("TIDEFLOW_HOME", str(tmp_path))
    dataset = DuckDBDataset("outage.duckdb")
    table = DuckDBTable(dataset, "counts").options(schema=Count)
    dataset.apply()
    table.apply()
    real_sink = table.sink()
    outage = Outage(dataset.connection(), until=time.monotonic() + 3.5)
    monkeypatch.setattr(dataset, "connection", lambda: outage)

    class CountSink:
        def write(self, rows: list[tuple[str, object]]) -> None:
            real_sink.write([(row_id, Count(row.key, len(row.words))) for row_id, row in rows])

        def close(self) -> None:
            pass

    monkeypatch.syspath_prepend(str(TEXTFLOW))

    class WatchedSource(MemorySource):
        def __init__(self) -> None:
            super().__init__(max_attempts=2)
            self.extended: list[str] = []
            self.nacked: list[str] = []

        def extend(self, ack_ids: Sequence[str], *, seconds: float) -> None:
            self.extended.extend(ack_ids)
            super().extend(ack_ids, seconds=seconds)

        def nack(self, ack_id: str, *, error: str, retryable: bool = True) -> bool:
            self.nacked.append(ack_id)
            return super().nack(ack_id, error=error, retryable=retryable)

    source, failures = WatchedSource(), MemoryFailures()
    stop = threading.Event()
    worker = _start_worker(source, CountSink(), failures, stop)  # type: ignore[arg-type]
    try:
        for key in ("a.txt", "b.txt"):
            source.publish(_event(key))
        _wait(lambda: len(source.acked) == 2)
    finally:
        stop.set()
        worker.join(15)
    assert failures.recorded == []
    assert source.nacked == []
    rows = outage.real.execute("SELECT key, words FROM counts ORDER BY key").fetchall()  # type: ignore[attr-defined]
    assert rows == [("a.txt", 2), ("b.txt", 1)]
    # Backoff: waits between write attempts grow (0.5, 1, 2 s ...), leases were extended.
    waits = [b - a for a, b in itertools.pairwise(outage.attempts)]
    assert len(waits) >= 3 and waits[2] > waits[0] * 1.5, waits
    assert source.extended


class RecordingSource(MemorySource):
    """Notes which ids were extended and when each was dead-lettered."""

    def __init__(self, *, max_attempts: int) -> None:
        super().__init__(max_attempts=max_attempts)
        self.extended: list[tuple[float, str]] = []
        self.dead_at: dict[str, float] = {}

    def extend(self, ack_ids: Sequence[str], *, seconds: float) -> None:
        self.extended += [(time.monotonic(), ack_id) for ack_id in ack_ids]
        super().extend(ack_ids, seconds=seconds)

    def nack(self, ack_id: str, *, error: str, retryable: bool = True) -> bool:
        dead = super().nack(ack_id, error=error, retryable=retryable)
        if dead:
            self.dead_at[ack_id] = time.monotonic()
        return dead


def test_leases_are_extended_while_a_write_waits() -> None:
    """A write stuck for seconds (a lock, a dead connection) keeps its leases alive."""

    class SlowSink(MemorySink):
        def write(self, rows: Sequence[tuple[str, object]]) -> None:
            self.began = time.monotonic()
            time.sleep(5)
            self.ended = time.monotonic()
            super().write(rows)

    source, sink, failures = RecordingSource(max_attempts=2), SlowSink(), MemoryFailures()
    stop = threading.Event()
    worker = _start_worker(source, sink, failures, stop)
    try:
        ack_id = source.publish(_event("a.txt"))
        _wait(lambda: source.acked == [ack_id])
    finally:
        stop.set()
        worker.join(15)
    during = [at for at, i in source.extended if i == ack_id and sink.began < at < sink.ended]
    assert len(during) >= 2  # every 2 s while the write ran


def test_a_failure_during_a_warehouse_outage_is_recorded_after_it() -> None:
    """An event fails for good while the failure log cannot be written: the worker waits
    for the warehouse, records the failure, and only then dead-letters the event."""
    back_at = time.monotonic() + 3

    class DownFailures(MemoryFailures):
        def record(self, event: LocalFileChangeEvent, *, error: str, attempts: int) -> Failure:
            if time.monotonic() < back_at:
                raise SinkUnavailableError("the warehouse is down")
            return super().record(event, error=error, attempts=attempts)

    source, sink, failures = RecordingSource(max_attempts=1), MemorySink(), DownFailures()
    stop = threading.Event()
    worker = _start_worker(source, sink, failures, stop)
    try:
        ack_id = source.publish(_event("bad.txt"))
        _wait(lambda: ack_id in source.dead_at)
    finally:
        stop.set()
        worker.join(15)
    (failure,) = failures.recorded
    assert "cannot digest bad.txt" in failure.error
    assert source.dead_at[ack_id] >= back_at  # never dead-lettered without its record


def test_num_concurrency_is_at_least_one() -> None:
    import textflow

    def count(file_event: LocalFileChangeEvent) -> None:
        return None

    with pytest.raises(ConfigError, match="num_concurrency must be at least 1, got 0"):
        consumer(textflow.file_change_stream, textflow.table, num_concurrency=0)(count)
