"""Durable file-change events for a ``LocalBucket``.

Settings: ``max_attempts`` (default 5) deliveries before an event is dead-lettered,
``lease_seconds`` (default 60) before an unacknowledged delivery is redelivered.

Events come from three places: writes through ``LocalBucket`` (journaled in the same
transaction as the write), files other programs put into the folder (seen by a
watchfiles watcher), and a reconciliation scan at start for files that appeared while
nothing was running. Delivery is at least once: a pulled event is leased, acknowledged
after the sink commits, redelivered when its lease runs out or it is nacked, and moved
to the dead-letter list with its last error after ``max_attempts``.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import watchfiles

from tideflow.io.keys import RESERVED_PREFIX
from tideflow.io.local.bucket import LocalBucket, iter_keys
from tideflow.io.local.journal import DEAD, DONE, LEASED, PENDING, EventRecord, Journal
from tideflow.io.primitive import PlanAction, PlanStep, SourcePrimitive
from tideflow.io.strategies import Source
from tideflow.types import DeadLetter, Delivery, FileChangeEvent, SourceStats

logger = logging.getLogger("tideflow.local")


class LocalFileChangeStream(SourcePrimitive):
    """Object-created events of a local bucket, journaled in SQLite."""

    def __init__(
        self,
        bucket: LocalBucket,
        *,
        max_attempts: int = 5,
        lease_seconds: float = 60.0,
        stream_id: str | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.bucket = bucket
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.stream_id = stream_id or f"{bucket.bucket_name}-changes"

    def _option_names(self) -> frozenset[str]:
        return frozenset({"max_attempts", "lease_seconds"})

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


class LocalJournalSource(Source):
    """Pulls leased events from the journal; watches the folder while started."""

    def __init__(self, stream: LocalFileChangeStream) -> None:
        self.stream = stream
        self.bucket = stream.bucket
        self.journal = stream.bucket.journal()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

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
        root.mkdir(parents=True, exist_ok=True)
        # Start watching before the scan so nothing written during the scan is missed.
        changes = watchfiles.watch(
            root,
            stop_event=self._stop,
            recursive=True,
            yield_on_timeout=True,
            rust_timeout=500,
        )
        next(changes, None)
        self.reconcile()
        for batch in changes:
            for _, path in batch:
                key = _key_for(root, Path(path))
                if key is None:
                    continue
                if os.path.isdir(path) and not os.path.islink(path):
                    # Files put into a new folder before the watcher covered it raise no
                    # event of their own (`mkdir d && mv f d/`, `cp -r photos/`): scan it.
                    for inner in iter_keys(Path(path)):
                        self._observe(f"{key}/{inner}")
                else:
                    self._observe(key)

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
        return [Delivery(str(r.id), self._event(r), r.attempts) for r in records]

    def _lease(self, max_messages: int) -> list[EventRecord]:
        return self.journal.lease(
            self.stream.stream_id,
            max_events=max_messages,
            lease_seconds=self.stream.lease_seconds,
            max_attempts=self.stream.max_attempts,
        )

    def ack(self, ack_ids: Sequence[str]) -> None:
        self.journal.ack([int(i) for i in ack_ids])

    def nack(self, ack_id: str, *, error: str, retryable: bool = True) -> None:
        self.journal.nack(
            int(ack_id),
            error=error,
            retryable=retryable,
            max_attempts=self.stream.max_attempts,
        )

    def extend(self, ack_ids: Sequence[str], *, seconds: float) -> None:
        self.journal.extend([int(i) for i in ack_ids], seconds=seconds)

    def release_all(self) -> int:
        return self.journal.release_all(self.stream.stream_id)

    def stats(self) -> SourceStats:
        counts = self.journal.counts(self.stream.stream_id)
        return SourceStats(
            pending=counts.get(PENDING, 0),
            in_flight=counts.get(LEASED, 0),
            done=counts.get(DONE, 0),
            dead_lettered=counts.get(DEAD, 0),
        )

    def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        return [self._dead_letter(r) for r in self.journal.dead(self.stream.stream_id, limit=limit)]

    def dead_letter_for(self, file_path: str) -> DeadLetter | None:
        record = self.journal.latest_for_key(self.stream.stream_id, file_path)
        return self._dead_letter(record) if record is not None and record.state == DEAD else None

    def retry_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        numeric = None if ids is None else [int(i) for i in ids]
        return self.journal.retry(self.stream.stream_id, numeric)

    def _event(self, record: EventRecord) -> FileChangeEvent:
        return FileChangeEvent(
            file_path=record.key,
            bucket=self.bucket.bucket_name,
            generation=record.generation,
            size=record.size,
            event_time=_utc(record.event_time),
            metadata=record.metadata,
            reader=self.bucket,
        )

    def _dead_letter(self, record: EventRecord) -> DeadLetter:
        return DeadLetter(
            id=str(record.id),
            event=self._event(record),
            attempts=record.attempts,
            error=record.last_error or "",
            dead_at=_utc(record.updated),
        )


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
