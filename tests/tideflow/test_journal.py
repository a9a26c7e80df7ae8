"""The local stream's delivery rules, on the SQLite journal directly."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest

from tideflow.io.local import LocalBucket, LocalFileChangeStream
from tideflow.io.local.stream import LocalJournalSource


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalJournalSource:
    monkeypatch.setenv("TIDEFLOW_HOME", str(tmp_path))
    bucket = LocalBucket("bucket")
    stream = LocalFileChangeStream(bucket, max_attempts=2, lease_seconds=0.3)
    bucket.apply()
    stream.apply()
    return stream.source()


def _write(source: LocalJournalSource, key: str, data: bytes = b"data") -> int:
    return source.bucket.client().blob(key).upload_from_string(data)


def test_write_journals_an_event_with_identity(source: LocalJournalSource) -> None:
    generation = _write(source, "a/b.txt", b"hello")
    (delivery,) = source.pull(max_messages=10, timeout=0)
    event = delivery.event
    assert (event.file_path, event.generation, event.size) == ("a/b.txt", generation, 5)
    assert event.blob == b"hello"
    assert event.event_id == f"bucket/a/b.txt#{generation}"
    assert delivery.attempt == 1


def test_leased_events_are_invisible_until_the_lease_expires(source: LocalJournalSource) -> None:
    _write(source, "x")
    assert len(source.pull(max_messages=10, timeout=0)) == 1
    assert source.pull(max_messages=10, timeout=0) == []
    time.sleep(0.35)
    (again,) = source.pull(max_messages=10, timeout=0)
    assert again.attempt == 2


def test_extend_keeps_the_lease(source: LocalJournalSource) -> None:
    _write(source, "x")
    (delivery,) = source.pull(max_messages=1, timeout=0)
    source.extend([delivery.ack_id], seconds=5)
    time.sleep(0.35)
    assert source.pull(max_messages=1, timeout=0) == []


def test_ack_is_final(source: LocalJournalSource) -> None:
    _write(source, "x")
    (delivery,) = source.pull(max_messages=1, timeout=0)
    source.ack([delivery.ack_id])
    time.sleep(0.35)
    assert source.pull(max_messages=1, timeout=0) == []
    assert source.stats().done == 1


def test_nack_redelivers_then_dead_letters_after_max_attempts(source: LocalJournalSource) -> None:
    _write(source, "bad")
    (first,) = source.pull(max_messages=1, timeout=0)
    source.nack(first.ack_id, error="boom 1")
    (second,) = source.pull(max_messages=1, timeout=0)
    source.nack(second.ack_id, error="boom 2")
    assert source.pull(max_messages=1, timeout=0) == []
    (letter,) = source.dead_letters()
    assert (letter.event.file_path, letter.attempts, letter.error) == ("bad", 2, "boom 2")
    assert source.dead_letter_for("bad") == letter
    assert source.stats().dead_lettered == 1

    assert source.retry_dead_letters([letter.id]) == 1
    (retried,) = source.pull(max_messages=1, timeout=0)
    assert retried.attempt == 1


def test_non_retryable_nack_dead_letters_at_once(source: LocalJournalSource) -> None:
    _write(source, "corrupt")
    (delivery,) = source.pull(max_messages=1, timeout=0)
    source.nack(delivery.ack_id, error="not an image", retryable=False)
    assert [d.error for d in source.dead_letters()] == ["not an image"]


def test_expired_leases_past_max_attempts_are_dead_lettered(source: LocalJournalSource) -> None:
    _write(source, "crasher")
    for _ in range(2):
        assert len(source.pull(max_messages=1, timeout=0)) == 1
        time.sleep(0.35)
    assert source.pull(max_messages=1, timeout=0) == []
    (letter,) = source.dead_letters()
    assert "never finished" in letter.error


def test_release_all_hands_back_leases(source: LocalJournalSource) -> None:
    _write(source, "x")
    source.pull(max_messages=1, timeout=0)
    assert source.release_all() == 1
    assert len(source.pull(max_messages=1, timeout=0)) == 1


def test_reconcile_finds_new_changed_and_ignores_known_files(source: LocalJournalSource) -> None:
    _write(source, "known")
    source.ack([d.ack_id for d in source.pull(max_messages=5, timeout=0)])
    root = source.bucket.root
    (root / "dropped.txt").write_text("from another program")
    (root / "sub").mkdir()
    (root / "sub" / "deep.txt").write_text("nested")
    (root / "link").symlink_to(root / "dropped.txt")
    assert source.reconcile() == 2
    assert source.reconcile() == 0
    keys = sorted(d.event.file_path for d in source.pull(max_messages=10, timeout=0))
    assert keys == ["dropped.txt", "sub/deep.txt"]


def test_pull_wakes_up_when_a_write_lands(source: LocalJournalSource) -> None:
    threading.Timer(0.1, _write, args=(source, "late")).start()
    started = time.monotonic()
    (delivery,) = source.pull(max_messages=1, timeout=5)
    assert delivery.event.file_path == "late"
    assert time.monotonic() - started < 2


def test_oversized_upload_stores_nothing(source: LocalJournalSource) -> None:
    blob = source.bucket.client().blob("big")
    with pytest.raises(ValueError, match="larger than 10 bytes"):
        blob.upload_from_file(io.BytesIO(b"x" * 11), max_bytes=10)
    assert not blob.exists()
    assert source.pull(max_messages=1, timeout=0) == []
    assert list((source.bucket.root / ".tideflow-tmp").iterdir()) == []
