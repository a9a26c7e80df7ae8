"""The local stream's delivery rules, on the SQLite journal directly."""

from __future__ import annotations

import errno
import io
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import fill_disk, small_tmpfs
from tideflow.exceptions import (
    BucketFullError,
    BucketUnavailableError,
    ConfigError,
    ObjectSupersededError,
    SourceUnavailableError,
)
from tideflow.io import write_health
from tideflow.io.local import LocalBucket, LocalFileChangeStream
from tideflow.io.local.journal import Journal
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
    assert (event.file_path, event.version, event.size) == ("a/b.txt", str(generation), 5)
    assert event.generation == generation  # LocalFileChangeEvent, as BuildFlow names it
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


def test_stats_tell_the_backlog_and_how_long_its_oldest_event_waited(
    source: LocalJournalSource,
) -> None:
    assert source.stats().oldest_pending_seconds == 0.0  # nothing waits
    _write(source, "first")
    time.sleep(0.2)
    _write(source, "second")
    _write(source, "third")
    stats = source.stats()
    assert (stats.pending, stats.in_flight) == (3, 0)
    assert stats.oldest_pending_seconds is not None and 0.2 <= stats.oldest_pending_seconds < 5
    (delivery,) = source.pull(max_messages=1, timeout=0)  # the oldest, now in flight
    assert delivery.event.file_path == "first"
    stats = source.stats()
    assert (stats.pending, stats.in_flight) == (2, 1)
    assert stats.oldest_pending_seconds is not None and stats.oldest_pending_seconds < 0.2


def test_nack_redelivers_then_dead_letters_after_max_attempts(source: LocalJournalSource) -> None:
    _write(source, "bad")
    (first,) = source.pull(max_messages=1, timeout=0)
    assert source.nack(first.ack_id, error="boom 1") is False
    (second,) = source.pull(max_messages=1, timeout=0)
    assert source.nack(second.ack_id, error="boom 2") is True
    assert source.pull(max_messages=1, timeout=0) == []
    queue = source.stream.dead_letter_queue()
    (letter,) = queue.list()
    assert (letter.event.file_path, letter.attempts, letter.error) == ("bad", 2, "boom 2")
    assert queue.count() == 1

    assert queue.retry([letter.id]) == 1
    (retried,) = source.pull(max_messages=1, timeout=0)
    assert retried.attempt == 1


def test_non_retryable_nack_dead_letters_at_once(source: LocalJournalSource) -> None:
    _write(source, "corrupt")
    (delivery,) = source.pull(max_messages=1, timeout=0)
    assert source.nack(delivery.ack_id, error="not an image", retryable=False) is True
    assert [d.error for d in source.stream.dead_letter_queue().list()] == ["not an image"]


def test_expired_leases_past_max_attempts_come_back_marked_exhausted(
    source: LocalJournalSource,
) -> None:
    # The runtime dead-letters such a delivery (and records why) instead of running it.
    _write(source, "crasher")
    for _ in range(2):
        assert len(source.pull(max_messages=1, timeout=0)) == 1
        time.sleep(0.35)
    (last,) = source.pull(max_messages=1, timeout=0)
    assert last.attempt > source.max_attempts
    assert source.nack(last.ack_id, error="never finished", retryable=False) is True
    assert source.pull(max_messages=1, timeout=0) == []


def test_a_replaced_version_is_superseded_not_read_as_the_new_bytes(
    source: LocalJournalSource,
) -> None:
    _write(source, "k", b"first")
    _write(source, "k", b"second")
    old, new = source.pull(max_messages=2, timeout=0)
    with pytest.raises(ObjectSupersededError, match=f"superseded by version {new.event.version}"):
        _ = old.event.blob
    assert new.event.blob == b"second"


@pytest.mark.parametrize(
    ("option", "value"), [("max_attempts", 0), ("max_attempts", 2.5), ("lease_seconds", -1)]
)
def test_stream_options_are_validated(option: str, value: object) -> None:
    stream = LocalFileChangeStream(LocalBucket("b"))
    with pytest.raises(ConfigError, match=option):
        stream.options(**{option: value})


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


def test_replay_sends_done_and_dead_events_again_once(source: LocalJournalSource) -> None:
    _write(source, "a.txt")
    _write(source, "b.txt")
    stream = source.stream
    objects = {o.key: o for o in source.bucket.objects().list()}
    # Pending events are not duplicated.
    assert stream.replay(objects.values()) == 0
    first = source.pull(max_messages=10, timeout=0)
    source.ack([first[0].ack_id])
    source.nack(first[1].ack_id, error="bad", retryable=False)
    assert stream.replay(objects.values()) == 2
    again = source.pull(max_messages=10, timeout=0)
    assert sorted(d.event.event_id for d in again) == sorted(d.event.event_id for d in first)
    assert all(d.attempt == 1 for d in again)
    # A version that is no longer the object's current one is skipped.
    _write(source, "a.txt", b"new")
    assert stream.replay([objects["a.txt"]]) == 0


def _recounted(source: LocalJournalSource) -> dict[str, int]:
    rows = source.journal._db().execute(
        "SELECT state, COUNT(*) FROM events WHERE stream_id = ? GROUP BY state",
        (source.stream.stream_id,),
    )
    return {state: count for state, count in rows}


def test_state_counts_follow_every_transition(source: LocalJournalSource) -> None:
    for key in ("a", "b", "c", "d"):
        _write(source, key)
    checks = [source.journal.counts(source.stream.stream_id) == _recounted(source)]
    a, b, c, _ = source.pull(max_messages=4, timeout=0)
    checks.append(source.journal.counts(source.stream.stream_id) == _recounted(source))
    source.ack([a.ack_id])
    source.nack(b.ack_id, error="again")
    source.nack(c.ack_id, error="bad", retryable=False)
    checks.append(source.journal.counts(source.stream.stream_id) == _recounted(source))
    time.sleep(0.35)  # d's lease expires: pulled again
    source.pull(max_messages=4, timeout=0)
    source.stream.dead_letter_queue().retry(None)
    source.stream.replay(source.bucket.objects().list())
    checks.append(source.journal.counts(source.stream.stream_id) == _recounted(source))
    assert checks == [True] * 4
    assert sum(source.journal.counts(source.stream.stream_id).values()) == 4


def test_a_journal_from_before_the_state_counts_gets_them_on_open(
    source: LocalJournalSource,
) -> None:
    _write(source, "a")
    _write(source, "b")
    (first, _) = source.pull(max_messages=2, timeout=0)
    source.ack([first.ack_id])
    db = source.journal._db()
    for name in ("events_counted_insert", "events_counted_delete", "events_counted_update"):
        db.execute(f"DROP TRIGGER {name}")
    db.execute("DROP TABLE state_counts")

    reopened = Journal(source.journal.path)  # what a newer tideflow does at start
    assert reopened.counts(source.stream.stream_id) == {"done": 1, "leased": 1}


def test_writes_arriving_during_a_commit_are_committed_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.add_stream("s")
    synced: list[Path] = []
    monkeypatch.setattr("tideflow.io.local.journal.fsync_dir", synced.append)
    first_publishing, release_first = threading.Event(), threading.Event()

    def publisher(name: str) -> Callable[[], Path]:
        def publish() -> Path:
            path = tmp_path / "files" / name
            path.parent.mkdir(exist_ok=True)
            if name == "0":  # the first group's commit takes a while: the others queue
                first_publishing.set()
                release_first.wait(10)
            if name == "bad":
                raise OSError("disk full")
            path.write_bytes(name.encode())
            return path

        return publish

    results: dict[str, int | BaseException] = {}

    def write(name: str) -> None:
        try:
            results[name] = journal.record_write(
                name,
                publish=publisher(name),
                unpublish=(tmp_path / "files" / name).unlink,
                metadata={},
            )
        except OSError as exc:
            results[name] = exc

    names = ["0", "1", "2", "bad", "3", "4"]
    threads = [threading.Thread(target=write, args=(name,)) for name in names]
    threads[0].start()
    assert first_publishing.wait(10)
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + 10
    while len(journal._queued) < len(names) - 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    release_first.set()
    for thread in threads:
        thread.join(10)

    assert isinstance(results.pop("bad"), OSError)  # its own error; the others go on
    generations = sorted(results.values())  # type: ignore[type-var]
    assert len(set(generations)) == 5
    assert synced == [tmp_path / "files"] * 2  # two groups: one fsync of the folder each
    journaled = {record.key for record in map(journal.get_object, results) if record}
    assert journaled == {"0", "1", "2", "3", "4"}
    assert journal.get_object("bad") is None
    assert journal.counts("s") == {"pending": 5}


def test_a_failed_commit_takes_its_files_back(
    source: LocalJournalSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write whose group cannot be committed leaves nothing visible: a new key has no
    file, a replaced one has its previous file again, and no event was journaled."""
    client = source.bucket.client()
    kept = _write(source, "kept.txt", b"old")

    def failing_fsync(path: Path) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as patched:
        patched.setattr("tideflow.io.local.journal.fsync_dir", failing_fsync)
        for key in ("kept.txt", "fresh/new.txt"):
            with pytest.raises(BucketUnavailableError, match="input/output error"):
                _write(source, key, b"refused")

    assert client.blob("kept.txt").download_as_bytes() == b"old"
    assert not client.blob("fresh/new.txt").exists()
    assert source.journal.get_object("kept.txt").generation == kept  # type: ignore[union-attr]
    assert source.journal.get_object("fresh/new.txt") is None
    assert source.reconcile() == 0  # a restart's scan finds nothing to journal
    assert [d.event.file_path for d in source.pull(max_messages=10, timeout=0)] == ["kept.txt"]
    assert list((source.bucket.root / ".tideflow-tmp").iterdir()) == []
    assert _write(source, "fresh/new.txt", b"later") > kept  # writes work again


@pytest.fixture
def full_journal(
    source: LocalJournalSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Journal, Path]]:
    """The source's journal alone on a small tmpfs with "before.txt" journaled, then the
    disk filled; the journal, and the ballast file to delete to free it."""
    monkeypatch.setattr(write_health, "PROBE_EVERY_SECONDS", 0.0)
    disk = tmp_path / "journal-disk"
    with small_tmpfs(disk, "4m"):
        journal = Journal(disk / "bucket.sqlite3")
        monkeypatch.setattr(source, "journal", journal)
        monkeypatch.setattr(source.bucket, "journal", lambda: journal)
        journal.add_stream(source.stream.stream_id)
        _write(source, "before.txt")
        yield journal, fill_disk(disk / "ballast")
        source.close()


def test_a_full_journal_refuses_writes_then_recovers(
    source: LocalJournalSource, full_journal: tuple[Journal, Path]
) -> None:
    """A write is refused as out of space and leaves no file, a lease cannot be taken, the
    journal reports it; after freeing space a probe clears it and everything works."""
    journal, ballast = full_journal
    with pytest.raises(BucketFullError, match=r"disk full \(committing its event journal\)"):
        _write(source, "refused.txt")
    assert not source.bucket.client().blob("refused.txt").exists()
    with pytest.raises(SourceUnavailableError, match="disk full"):
        source.pull(max_messages=10, timeout=0)
    assert journal.health.problem() is not None
    assert "journal bucket: disk full" in write_health.write_problems()

    ballast.unlink()
    assert journal.health.problem() is None
    _write(source, "after.txt")
    delivered = source.pull(max_messages=10, timeout=0)
    assert sorted(d.event.file_path for d in delivered) == ["after.txt", "before.txt"]
    assert journal.get_object("refused.txt") is None


def test_a_file_dropped_in_while_the_journal_is_full_is_found_later(
    source: LocalJournalSource, full_journal: tuple[Journal, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watcher cannot journal a copied-in file while the journal is full: it keeps
    watching, and a later scan journals the file once there is room."""
    journal, ballast = full_journal
    monkeypatch.setattr("tideflow.io.local.stream.RESCAN_AFTER_SECONDS", 0.5)
    source.start()
    time.sleep(1)  # the watcher is up
    staging = source.bucket.root / ".tideflow-tmp" / "dropped.txt"
    staging.write_bytes(b"copied in")
    staging.rename(source.bucket.root / "dropped.txt")
    time.sleep(1)  # seen, and refused
    assert journal.get_object("dropped.txt") is None
    ballast.unlink()
    deadline = time.monotonic() + 10
    while journal.get_object("dropped.txt") is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert journal.get_object("dropped.txt") is not None
    assert source.stream.bucket.root.joinpath("dropped.txt").read_bytes() == b"copied in"
