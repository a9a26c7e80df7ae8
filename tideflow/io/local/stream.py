"""Durable file-change events for a ``LocalBucket``.

Settings: ``max_attempts`` (default 5) deliveries before an event is dead-lettered,
``lease_seconds`` (default 60) before an unacknowledged delivery is redelivered.

Events come from three places: writes through ``LocalBucket`` (journaled in the same
transaction as the write), files other programs put into the folder (seen by a
watchfiles watcher), and a reconciliation scan at start for files that appeared while
nothing was running. Delivery is at least once: a pulled event is leased, acknowledged
after the sink commits, redelivered when its lease runs out or it is nacked, and moved
to the dead-letter list with its last error after ``max_attempts``. The dead-letter
list is the journal's ``dead`` events (``dead_letter_queue()``); the runtime records each
in the table's failure log.

The journal stays bounded: while the watcher runs, done events older than
``TIDEFLOW_JOURNAL_RETENTION_DAYS`` (default 7; ``LocalSettings``, read when the stream is
made) are deleted, at start and then hourly.
Pending, leased and dead events are never deleted, and each file's object record (its
key and generation, what keeps an unchanged file from being journaled twice) is kept.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import watchfiles

from tideflow.exceptions import SourceError
from tideflow.home import make_private_dir
from tideflow.io.keys import RESERVED_PREFIX
from tideflow.io.local.bucket import LocalBucket, iter_keys
from tideflow.io.local.journal import DEAD, DONE, LEASED, PENDING, EventRecord, Journal
from tideflow.io.local.settings import LocalSettings
from tideflow.io.options import OptionCheck, seconds, whole_number
from tideflow.io.primitive import PlanAction, PlanStep, SourcePrimitive
from tideflow.io.strategies import DeadLetterQueue, Source, StoredObject
from tideflow.types import DeadLetter, Delivery, ObjectReader, SourceStats
from tideflow.types.local import LocalFileChangeEvent

COMPACT_EVERY_SECONDS = 3600.0
# While the journal refuses writes (disk full), files the watcher saw are found again by a
# scan this much later.
RESCAN_AFTER_SECONDS = 5.0
logger = logging.getLogger("tideflow.local")


class LocalFileChangeStream(SourcePrimitive):
    """Object-created events of a local bucket, journaled in SQLite."""

    option_checks: ClassVar[Mapping[str, OptionCheck]] = {
        "max_attempts": whole_number(1, 1000),
        "lease_seconds": seconds(0, 12 * 3600, above=True),
    }

    def __init__(
        self,
        bucket: LocalBucket | str | os.PathLike[str] | None = None,
        *,
        file_path: str | os.PathLike[str] | None = None,
        event_types: Iterable[object] = ("added",),
        max_attempts: int = 5,
        lease_seconds: float = 60.0,
        stream_id: str | None = None,
        settings: LocalSettings | None = None,
    ) -> None:
        if isinstance(bucket, str | os.PathLike):  # BuildFlow's LocalFileChangeStream(path)
            bucket, file_path = None, bucket
        # BuildFlow's signature: watch a folder relative to the working directory; events
        # then carry the file's full path as ``file_path``, as BuildFlow's do.
        self.full_paths = file_path is not None
        if file_path is not None:
            if bucket is not None:
                raise ValueError("LocalFileChangeStream takes a bucket or a file_path, not both")
            bucket = LocalBucket(Path.cwd() / Path(file_path).expanduser())
            _check_event_types(event_types)
        if bucket is None:
            raise ValueError("LocalFileChangeStream needs a LocalBucket (or file_path=...)")
        self.bucket = bucket
        self.stream_id = stream_id or f"{bucket.bucket_name}-changes"
        self.settings = settings or LocalSettings.from_environ()

        self.max_attempts = 5
        self.lease_seconds = 60.0
        self.options(max_attempts=max_attempts, lease_seconds=lease_seconds)

    def primitive_id(self) -> str:
        return f"local-file-change-stream:{self.stream_id}"

    def depends_on(self) -> tuple[LocalBucket, ...]:
        return (self.bucket,)

    def _exists(self) -> bool:
        path = self.bucket.journal_path
        return path.exists() and Journal.open(path).has_stream(self.stream_id)

    def plan(self) -> PlanStep:
        action = PlanAction.NO_CHANGE if self._exists() else PlanAction.CREATE
        return self.step(action, f"journal {self.bucket.journal_path}")

    def plan_destroy(self) -> PlanStep:
        action = PlanAction.DELETE if self._exists() else PlanAction.NO_CHANGE
        return self.step(action, f"journal {self.bucket.journal_path}")

    def apply(self) -> PlanStep:
        step = self.plan()
        self.bucket.journal().add_stream(self.stream_id)
        return step

    def destroy(self) -> PlanStep:
        step = self.plan_destroy()
        if self.bucket.journal_path.exists():
            self.bucket.journal().remove_stream(self.stream_id)
        return step

    def source(self) -> LocalJournalSource:
        return LocalJournalSource(self)

    def dead_letter_queue(self) -> LocalDeadLetters:
        return LocalDeadLetters(self)

    def replay(self, objects: Iterable[StoredObject]) -> int:
        """See ``SourcePrimitive.replay``: the journal's events go back to pending."""
        journal = self.bucket.journal()
        count = 0
        for stored in objects:
            if journal.replay(self.stream_id, stored.key, int(stored.version)):
                count += 1
        return count


class LocalJournalSource(Source):
    """Pulls leased events from the journal; watches the folder while started."""

    def __init__(self, stream: LocalFileChangeStream) -> None:
        self.stream = stream
        self.bucket = stream.bucket
        self.journal = stream.bucket.journal()
        self.max_attempts = stream.max_attempts
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._next_compaction = 0.0
        self._rescan_at: float | None = None

    # -- background: watcher and reconciliation ------------------------------------

    def start(self) -> None:
        self._watcher = threading.Thread(target=self._watch, name="tideflow-watch", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)

    def reconcile(self) -> int:
        """Journal files that appeared or changed while nobody watched; how many."""
        root = self.bucket.root
        found = 0
        for key in set(iter_keys(root)) | self.journal.known_keys():
            if self._observe(key) is not None:
                found += 1
        if found:
            logger.info("reconciliation journaled %d file(s) found in %s", found, root)
        return found

    def _watch(self) -> None:
        root = self.bucket.root
        make_private_dir(root)
        # Start watching before the scan so nothing written during the scan is missed.
        changes = watchfiles.watch(
            root,
            stop_event=self._stop,
            recursive=True,
            yield_on_timeout=True,
            rust_timeout=500,
        )
        next(changes, None)
        self._rescan()
        for batch in changes:
            self._compact_now_and_then()
            if self._rescan_at is not None and time.monotonic() >= self._rescan_at:
                self._rescan()
            for _, path in batch:
                key = _key_for(root, Path(path))
                if key is None:
                    continue
                try:
                    self._observe_path(key, path)
                except SourceError as exc:
                    self._scan_later(exc)

    def _observe_path(self, key: str, path: str) -> None:
        if os.path.isdir(path) and not os.path.islink(path):
            # Files put into a new folder before the watcher covered it raise no event of
            # their own (`mkdir d && mv f d/`, `cp -r photos/`): scan it.
            for inner in iter_keys(Path(path)):
                self._observe(f"{key}/{inner}")
        else:
            self._observe(key)

    def _rescan(self) -> None:
        self._rescan_at = None
        try:
            self.reconcile()
        except SourceError as exc:
            self._scan_later(exc)

    def _scan_later(self, exc: SourceError) -> None:
        """The journal refused a file the watcher saw (its disk is full): the watcher goes
        on, and a scan finds that file again once the journal takes writes."""
        logger.warning(
            "files in %s cannot be journaled now, scanning again in %gs: %s",
            self.bucket.root,
            RESCAN_AFTER_SECONDS,
            exc,
        )
        self._rescan_at = time.monotonic() + RESCAN_AFTER_SECONDS

    def _compact_now_and_then(self) -> None:
        """Drop done events older than the retention, at start and then hourly."""
        now = time.monotonic()
        if now < self._next_compaction:
            return
        self._next_compaction = now + COMPACT_EVERY_SECONDS
        retention = self.stream.settings.journal_retention_seconds
        try:
            removed = self.journal.compact(
                self.stream.stream_id, older_than=time.time() - retention
            )
        except SourceError as exc:  # the journal is busy: next time
            logger.warning("journal compaction skipped: %s", exc)
            return
        if removed:
            logger.info("journal: compacted %d done event(s) older than %gs", removed, retention)

    def _observe(self, key: str) -> int | None:
        path = self.bucket.root / key

        def stat() -> os.stat_result | None:
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                return None
            return info if path.is_file() and not path.is_symlink() else None

        return self.journal.observe(key, stat)

    # -- delivery --------------------------------------------------------------------

    def pull(self, *, max_messages: int, timeout: float) -> list[Delivery]:
        records = self._lease(max_messages)
        if not records and timeout > 0:
            self.journal.wait_for_change(timeout)
            records = self._lease(max_messages)
        return [Delivery(str(r.id), event_of(self.stream, r), r.attempts) for r in records]

    def _lease(self, max_messages: int) -> list[EventRecord]:
        return self.journal.lease(
            self.stream.stream_id,
            max_events=max_messages,
            lease_seconds=self.stream.lease_seconds,
        )

    def ack(self, ack_ids: Sequence[str]) -> None:
        self.journal.ack([int(i) for i in ack_ids])

    def nack(self, ack_id: str, *, error: str, retryable: bool = True) -> bool:
        state = self.journal.nack(
            int(ack_id),
            error=error,
            retryable=retryable,
            max_attempts=self.stream.max_attempts,
        )
        return state == DEAD

    def extend(self, ack_ids: Sequence[str], *, seconds: float) -> None:
        self.journal.extend([int(i) for i in ack_ids], seconds=seconds)

    def release_all(self) -> int:
        return self.journal.release_all(self.stream.stream_id)

    def stats(self) -> SourceStats:
        counts = self.journal.counts(self.stream.stream_id)
        oldest = self.journal.oldest_pending(self.stream.stream_id)
        return SourceStats(
            pending=counts.get(PENDING, 0),
            in_flight=counts.get(LEASED, 0),
            done=counts.get(DONE, 0),
            # Nothing waiting: the oldest waiting event is 0 s old (as SQS reports it).
            oldest_pending_seconds=0.0 if oldest is None else max(0.0, time.time() - oldest),
        )


class LocalDeadLetters(DeadLetterQueue):
    """The journal's dead events of one stream."""

    def __init__(self, stream: LocalFileChangeStream) -> None:
        self.stream = stream
        self.journal = stream.bucket.journal()

    def list(self, *, limit: int = 100) -> list[DeadLetter]:
        records = self.journal.dead(self.stream.stream_id, limit=limit)
        return [
            DeadLetter(
                id=str(record.id),
                event=event_of(self.stream, record),
                attempts=record.attempts,
                error=record.last_error or "",
                dead_at=_utc(record.updated),
            )
            for record in records
        ]

    def retry(self, ids: Sequence[str] | None = None) -> int:
        numeric = None if ids is None else [int(i) for i in ids]
        return self.journal.retry(self.stream.stream_id, numeric)

    def count(self) -> int:
        return self.journal.counts(self.stream.stream_id).get(DEAD, 0)


def event_of(stream: LocalFileChangeStream, record: EventRecord) -> LocalFileChangeEvent:
    bucket = stream.bucket
    file_path, metadata = record.key, record.metadata
    reader: ObjectReader = bucket
    if stream.full_paths:  # BuildFlow's events: the file's full path, and src_path
        file_path = str(bucket.root / record.key)
        metadata = {**metadata, "src_path": file_path, "event_type": "added"}
        reader = FullPathReader(bucket)
    return LocalFileChangeEvent(
        file_path=file_path,
        bucket=bucket.bucket_name,
        version=str(record.generation),
        size=record.size,
        event_time=_utc(record.event_time),
        metadata=metadata,
        reader=reader,
    )


class FullPathReader:
    """Reads the objects of a bucket by their full path (events of BuildFlow-style streams)."""

    def __init__(self, bucket: LocalBucket) -> None:
        self.bucket = bucket

    def read_bytes(self, key: str, *, version: str | None = None) -> bytes:
        relative = Path(key).relative_to(self.bucket.root).as_posix()
        return self.bucket.read_bytes(relative, version=version)


def _check_event_types(event_types: Iterable[object]) -> None:
    """BuildFlow's ``event_types``: tideflow's local streams deliver created (and replaced)
    files only, which is BuildFlow's default (``FileChangeStreamEventType.CREATED``)."""
    names = {str(getattr(kind, "value", kind)) for kind in event_types}
    if names - {"added", "created"}:
        raise ValueError(f"LocalFileChangeStream delivers created files only, not {sorted(names)}")


def _utc(timestamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)


def _key_for(root: Path, path: Path) -> str | None:
    try:
        relative = path.relative_to(root)
    except ValueError:
        return None
    if any(part.startswith(RESERVED_PREFIX) for part in relative.parts):
        return None
    return relative.as_posix()
