"""The pull -> process -> write -> ack loop, with a real replica and in-memory I/O."""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tideflow.conftest import TEXTFLOW
from tideflow.io.memory import MemorySink, MemorySource
from tideflow.runtime.replica import ReplicaProcess, ReplicaSpec
from tideflow.runtime.worker import ConsumerWorker
from tideflow.types import FileChangeEvent


class TextReader:
    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts

    def read_bytes(self, key: str, *, generation: int | None = None) -> bytes:
        return self.texts[key].encode()


TEXTS = {"a.txt": "one two", "b.txt": "three", "bad.txt": "POISON"}


def _event(key: str, generation: int = 1) -> FileChangeEvent:
    return FileChangeEvent(
        file_path=key,
        bucket="memory",
        generation=generation,
        size=len(TEXTS[key]),
        event_time=datetime.datetime.now(datetime.UTC),
        reader=TextReader(TEXTS),
    )


@pytest.fixture
def running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[MemorySource, MemorySink]]:
    monkeypatch.setenv("TIDEFLOW_HOME", str(tmp_path))
    # The run process has the flow imported (rows come back as its dataclasses).
    monkeypatch.syspath_prepend(str(TEXTFLOW))
    source, sink = MemorySource(max_attempts=2), MemorySink()
    stop = threading.Event()
    spec = ReplicaSpec(
        entry_point="textflow:app",
        project_dir=str(TEXTFLOW),
        consumer_name="count_words",
        index=0,
        count=1,
        global_values={},
        log_level="WARNING",
    )
    worker = ConsumerWorker(
        replica=ReplicaProcess(spec),
        source=source,
        sink=sink,
        batch_size=4,
        lease_seconds=30,
        event_timeout=60,
        stop=stop,
        on_fatal=lambda message: pytest.fail(message),
    )
    worker.start()
    yield source, sink
    stop.set()
    worker.join(15)
    assert not worker.is_alive()


def _wait(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_rows_are_written_then_acked_and_failures_dead_lettered(
    running: tuple[MemorySource, MemorySink],
) -> None:
    source, sink = running
    for key in ("a.txt", "b.txt", "bad.txt"):
        source.publish(_event(key))
    _wait(lambda: len(source.acked) == 2 and source.dead)
    assert sorted(sink.rows) == ["memory/a.txt#1:0", "memory/b.txt#1:0"]
    assert [w.text for w in sink.rows["memory/a.txt#1:0"].words] == ["one", "two"]
    (letter,) = source.dead_letters()
    assert letter.attempts == 2
    assert "cannot digest bad.txt" in letter.error


def test_a_failing_sink_acks_nothing_and_the_event_is_redelivered(
    running: tuple[MemorySource, MemorySink],
) -> None:
    source, sink = running
    sink.fail_with = "disk full"
    source.publish(_event("a.txt"))
    _wait(lambda: bool(source.dead))
    assert source.acked == []
    assert sink.rows == {}
    assert source.dead_letters()[0].error == "sink write failed"


def test_a_source_outage_is_waited_out(running: tuple[MemorySource, MemorySink]) -> None:
    source, sink = running
    source.failing_pulls = 2
    source.publish(_event("b.txt"))
    _wait(lambda: source.acked == ["1"])
    assert list(sink.rows) == ["memory/b.txt#1:0"]
