"""Done events leave the journal after the retention; nothing else ever does."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tideflow.io.local import LocalBucket, LocalFileChangeStream
from tideflow.io.local.stream import LocalJournalSource


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalJournalSource:
    monkeypatch.setenv("TIDEFLOW_HOME", str(tmp_path))
    bucket = LocalBucket("bucket")
    stream = LocalFileChangeStream(bucket, max_attempts=2, lease_seconds=30)
    bucket.apply()
    stream.apply()
    return stream.source()


def _states(source: LocalJournalSource) -> list[str]:
    with sqlite3.connect(source.journal.path) as db:
        return sorted(state for (state,) in db.execute("SELECT state FROM events"))


def _prepare(source: LocalJournalSource) -> None:
    """Two done events, one dead, one leased, one pending."""
    client = source.bucket.client()
    for key in ("done-1", "done-2", "dead", "leased"):
        client.blob(key).upload_from_string(b"x")
    deliveries = {d.event.file_path: d for d in source.pull(max_messages=10, timeout=0)}
    source.ack([deliveries["done-1"].ack_id, deliveries["done-2"].ack_id])
    assert source.nack(deliveries["dead"].ack_id, error="broken", retryable=False)
    client.blob("pending").upload_from_string(b"x")


def _counts(source: LocalJournalSource) -> tuple[int | None, int | None, int | None]:
    stats = source.stats()
    return stats.pending, stats.in_flight, stats.done


def test_compaction_drops_only_old_done_events(source: LocalJournalSource) -> None:
    _prepare(source)
    stream_id = source.stream.stream_id
    before = _counts(source)
    assert source.journal.compact(stream_id, older_than=time.time() - 3600) == 0
    assert source.journal.compact(stream_id, older_than=time.time() + 1, batch=1) == 2
    assert _states(source) == ["dead", "leased", "pending"]
    assert _counts(source) == before  # done still counts the compacted events
    assert source.stats().done == 2
    # The files' object records stay: a rescan journals nothing again.
    assert source.reconcile() == 0
    assert [d.event.file_path for d in source.pull(max_messages=10, timeout=0)] == ["pending"]
    assert [letter.event.file_path for letter in source.stream.dead_letter_queue().list()] == [
        "dead"
    ]


def test_the_watcher_compacts_after_the_retention(
    source: LocalJournalSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    _prepare(source)
    # The stream reads the setting when it is made, as the stack does when it makes it.
    monkeypatch.setenv("TIDEFLOW_JOURNAL_RETENTION_DAYS", "0")
    watcher = LocalFileChangeStream(source.bucket, max_attempts=2, lease_seconds=30).source()
    watcher.start()
    try:
        deadline = time.monotonic() + 10
        while "done" in _states(source) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        watcher.close()
    assert _states(source) == ["dead", "leased", "pending"]
    assert watcher.stats().done == 2
