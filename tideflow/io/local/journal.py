"""The SQLite journal behind a local bucket: object generations and stream events.

One database per bucket, in WAL mode with ``synchronous=FULL``: a write returns only
once its object row and its events are on disk, so an upload that was answered
"accepted" survives ``kill -9`` and power loss. Every change that matters runs in a
``BEGIN IMMEDIATE`` transaction, which serialises writers across processes. Uploads that
arrive while one is being committed are committed together (group commit): one folder
fsync and one journal commit for all of them.

A write that cannot be committed (the journal's disk is full, read-only or failing) raises
``JournalWriteError``, changes nothing, and takes back the files its group published; the
failure is reported to ``write_health`` (``/healthz``) until a probe write succeeds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from tideflow.exceptions import SourceError, SourceUnavailableError
from tideflow.home import make_private_dir
from tideflow.io.write_health import (
    free_space_problem,
    out_of_space,
    write_failure_reason,
    write_health,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    key TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS streams (stream_id TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id TEXT NOT NULL,
    key TEXT NOT NULL,
    generation INTEGER NOT NULL,
    size INTEGER NOT NULL,
    event_time REAL NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    updated REAL NOT NULL,
    UNIQUE (stream_id, key, generation)
);
CREATE INDEX IF NOT EXISTS events_by_state ON events (stream_id, state, lease_until, id);
CREATE INDEX IF NOT EXISTS events_by_key ON events (stream_id, key, id);
"""

# Events per stream and state, kept by triggers in the writer's own transaction, so that
# ``counts`` (``tideflow status``) reads a few rows instead of counting a million events.
_STATE_COUNTS = (
    "CREATE TABLE IF NOT EXISTS state_counts (stream_id TEXT NOT NULL, state TEXT NOT NULL, "
    "n INTEGER NOT NULL, PRIMARY KEY (stream_id, state)) WITHOUT ROWID",
    """CREATE TRIGGER IF NOT EXISTS events_counted_insert AFTER INSERT ON events BEGIN
    INSERT INTO state_counts VALUES (new.stream_id, new.state, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
END""",
    """CREATE TRIGGER IF NOT EXISTS events_counted_delete AFTER DELETE ON events BEGIN
    UPDATE state_counts SET n = n - 1 WHERE stream_id = old.stream_id AND state = old.state;
END""",
    """CREATE TRIGGER IF NOT EXISTS events_counted_update AFTER UPDATE OF state ON events
WHEN old.state IS NOT new.state BEGIN
    UPDATE state_counts SET n = n - 1 WHERE stream_id = old.stream_id AND state = old.state;
    INSERT INTO state_counts VALUES (new.stream_id, new.state, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
END""",
)

PENDING, LEASED, DONE, DEAD = "pending", "leased", "done", "dead"

# SQLite's errors of the moment: the same write may succeed later. The first group are the
# disk's (full, read-only, I/O) and make the journal unhealthy; the others are contention.
_DISK_ERRORS = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")
_BUSY_ERRORS = ("SQLITE_BUSY", "SQLITE_LOCKED")

logger = logging.getLogger("tideflow.local")


class JournalWriteError(SourceUnavailableError):
    """The journal cannot be written now; nothing changed. ``reason`` in a few words
    (``disk full``), ``out_of_space`` when the disk is full or over quota."""

    def __init__(self, message: str, *, reason: str, out_of_space: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.out_of_space = out_of_space


@dataclass(frozen=True)
class EventRecord:
    id: int
    key: str
    generation: int
    size: int
    event_time: float
    metadata: dict[str, Any]
    state: str
    attempts: int
    last_error: str | None
    updated: float


@dataclass
class _Write:
    """One ``record_write`` waiting for its group commit."""

    key: str
    publish: Callable[[], Path]
    unpublish: Callable[[], None]
    metadata: dict[str, Any]
    generation: int | None = None
    error: BaseException | None = None


@dataclass(frozen=True)
class ObjectRecord:
    key: str
    generation: int
    size: int
    mtime_ns: int
    inode: int
    metadata: dict[str, Any]


class Journal:
    """Thread-safe access to one bucket's journal; use ``Journal.open(path)``."""

    _open: ClassVar[dict[Path, Journal]] = {}
    _open_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> Journal:
        """The process-wide journal for ``path``, so writers can wake up local pullers."""
        path = path.resolve()
        with cls._open_lock:
            if path not in cls._open:
                cls._open[path] = cls(path)
            return cls._open[path]

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._changed = threading.Condition()
        # This process's writers queue here rather than in SQLite's busy handler, which
        # polls with sleeps of up to 100 ms: under load a writer could lose the race for
        # seconds (upload p99 3.6 s with 32 clients). Other processes still meet it.
        # Re-entrant: a group commit holds it from publishing until the files are taken back.
        self._write_lock = threading.RLock()
        # Group commit of uploads: writes queue up, one leader at a time commits them all.
        self._queued: list[_Write] = []
        self._queue_lock = threading.Lock()
        self._leader_lock = threading.Lock()
        self.health = write_health(path, f"journal {path.stem}", self.probe_write)
        make_private_dir(path.parent)
        self._db().executescript(_SCHEMA)
        with self._transaction() as db:
            counted = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'state_counts'"
            ).fetchone()
            for statement in _STATE_COUNTS:
                db.execute(statement)
            if not counted:  # a journal from before the counts: count once
                db.execute(
                    "INSERT INTO state_counts "
                    "SELECT stream_id, state, COUNT(*) FROM events GROUP BY stream_id, state"
                )

    # -- connections ------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        with self._write_lock:
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            except BaseException as exc:
                self._roll_back(db)
                if isinstance(exc, sqlite3.Error):
                    raise self._write_error(exc) from exc
                raise

    def _roll_back(self, db: sqlite3.Connection) -> None:
        if not db.in_transaction:  # SQLite ends it itself on some errors (SQLITE_FULL)
            return
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            # A connection left inside a transaction would refuse every later BEGIN;
            # closing it rolls the transaction back.
            db.close()
            self._local.db = None

    def _write_error(self, exc: sqlite3.Error) -> SourceError:
        name = getattr(exc, "sqlite_errorname", "")
        if not name.startswith(_DISK_ERRORS + _BUSY_ERRORS):
            return SourceError(f"the event journal {self.path} failed: {exc}")
        reason = write_failure_reason(exc)
        if name.startswith(_DISK_ERRORS):
            self.health.failed(reason)
        return JournalWriteError(
            f"the event journal {self.path} cannot be written now: {reason}",
            reason=reason,
            out_of_space=out_of_space(exc),
        )

    def probe_write(self) -> str | None:
        """Whether the journal takes writes again, with room to spare (``write_health``):
        None, or what is still wrong."""
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO counters (name, value) VALUES ('write_probe', 1) "
                    "ON CONFLICT (name) DO UPDATE SET value = value + 1"
                )
        except JournalWriteError as exc:
            return exc.reason
        return free_space_problem(self.path.parent)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait_for_change(self, timeout: float) -> None:
        """Sleep until a writer in this process journals something, or ``timeout``."""
        with self._changed:
            self._changed.wait(timeout)

    # -- objects ----------------------------------------------------------------

    def _next_generation(self, db: sqlite3.Connection) -> int:
        row = db.execute(
            "INSERT INTO counters (name, value) VALUES ('generation', 1) "
            "ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value"
        ).fetchone()
        return int(row[0])

    def _store_generation(
        self,
        db: sqlite3.Connection,
        key: str,
        stat: os.stat_result,
        metadata: dict[str, Any],
    ) -> int:
        generation = self._next_generation(db)
        meta = json.dumps(metadata)
        db.execute(
            "INSERT INTO objects (key, generation, size, mtime_ns, inode, metadata) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
            "generation = excluded.generation, size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, inode = excluded.inode, metadata = excluded.metadata",
            (key, generation, stat.st_size, stat.st_mtime_ns, stat.st_ino, meta),
        )
        now = time.time()
        db.execute(
            "INSERT INTO events (stream_id, key, generation, size, event_time, metadata, updated) "
            "SELECT stream_id, ?, ?, ?, ?, ?, ? FROM streams",
            (key, generation, stat.st_size, now, meta, now),
        )
        return generation

    def record_write(
        self,
        key: str,
        *,
        publish: Callable[[], Path],
        unpublish: Callable[[], None],
        metadata: dict[str, Any],
    ) -> int:
        """Run ``publish`` (which makes the file visible and returns its path) and journal
        it, atomically: the file's folder is fsynced and the journal committed before this
        returns. When the commit fails, ``unpublish`` takes the file back (the key's
        previous file, if any, returns) and the error is raised: a write that was refused
        must not be found by the folder scan at the next start and processed after all.

        Writes that arrive while another group is being committed wait and go together in
        the next: on a busy app each upload no longer pays a folder fsync and a commit of
        its own, one after the other. Holding the write lock across ``publish`` keeps the
        folder watcher from journaling the same file a second time.
        """
        write = _Write(key, publish, unpublish, metadata)
        with self._queue_lock:
            self._queued.append(write)
        with self._leader_lock:
            if write.generation is None and write.error is None:
                with self._queue_lock:
                    group, self._queued = self._queued, []
                self._commit_writes(group)
        if write.error is not None:
            raise write.error
        self._notify()
        assert write.generation is not None
        return write.generation

    def _commit_writes(self, group: list[_Write]) -> None:
        """Publish and journal ``group`` in one transaction; a write whose ``publish``
        fails gets its own error, the others go on. When the transaction fails, every
        file it published is taken back before the write lock is released (the folder
        watcher waits on it), and every write of the group gets the error."""
        generations: dict[int, int] = {}
        published: list[tuple[_Write, Path]] = []
        with self._write_lock:
            try:
                with self._transaction() as db:
                    for write in group:
                        try:
                            published.append((write, write.publish()))
                        except Exception as exc:
                            write.error = exc
                    for folder in {path.parent for _, path in published}:
                        fsync_dir(folder)
                    for write, path in published:
                        generations[id(write)] = self._store_generation(
                            db, write.key, os.stat(path), write.metadata
                        )
            except BaseException as exc:
                _unpublish(published)
                for write in group:
                    write.error = write.error or exc
                raise
        for write in group:
            write.generation = generations.get(id(write))

    def observe(self, key: str, stat: Callable[[], os.stat_result | None]) -> int | None:
        """Journal a file found in the folder if it is new or changed; its generation."""
        current = stat()
        if current is not None and self._unchanged(self._db(), key, current):
            return None  # the usual case (the watcher sees each upload): no write lock
        if current is None and self.get_object(key) is None:
            return None  # gone, never journaled (a refused upload taken back): nothing to do
        with self._transaction() as db:
            current = stat()
            if current is None:
                db.execute("DELETE FROM objects WHERE key = ?", (key,))
                return None
            if self._unchanged(db, key, current):
                return None
            generation = self._store_generation(db, key, current, {})
        self._notify()
        return generation

    @staticmethod
    def _unchanged(db: sqlite3.Connection, key: str, current: os.stat_result) -> bool:
        known = db.execute(
            "SELECT size, mtime_ns, inode FROM objects WHERE key = ?", (key,)
        ).fetchone()
        return known is not None and tuple(known) == (
            current.st_size,
            current.st_mtime_ns,
            current.st_ino,
        )

    def forget(self, key: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM objects WHERE key = ?", (key,))

    def get_object(self, key: str) -> ObjectRecord | None:
        row = self._db().execute("SELECT * FROM objects WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return ObjectRecord(
            key=row["key"],
            generation=row["generation"],
            size=row["size"],
            mtime_ns=row["mtime_ns"],
            inode=row["inode"],
            metadata=json.loads(row["metadata"]),
        )

    def replay(self, stream_id: str, key: str, generation: int) -> bool:
        """Deliver ``(key, generation)`` again on ``stream_id``: its done or dead event goes
        back to pending with no attempts, or an event is journaled when the stream never had
        one. False when that generation is not the object's current one, or its event is
        already pending or leased."""
        with self._transaction() as db:
            current = db.execute(
                "SELECT size, metadata FROM objects WHERE key = ? AND generation = ?",
                (key, generation),
            ).fetchone()
            if current is None:
                return False
            now = time.time()
            updated = db.execute(
                "UPDATE events SET state = ?, attempts = 0, lease_until = 0, last_error = NULL,"
                " updated = ? WHERE stream_id = ? AND key = ? AND generation = ?"
                " AND state IN (?, ?)",
                (PENDING, now, stream_id, key, generation, DONE, DEAD),
            ).rowcount
            if not updated:
                updated = db.execute(
                    "INSERT INTO events (stream_id, key, generation, size, event_time, metadata,"
                    " updated) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (stream_id, key, generation, current["size"], now, current["metadata"], now),
                ).rowcount
        if updated:
            self._notify()
        return bool(updated)

    def known_keys(self) -> set[str]:
        return {row[0] for row in self._db().execute("SELECT key FROM objects")}

    # -- streams ----------------------------------------------------------------

    def has_stream(self, stream_id: str) -> bool:
        query = "SELECT 1 FROM streams WHERE stream_id = ?"
        return self._db().execute(query, (stream_id,)).fetchone() is not None

    def add_stream(self, stream_id: str) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO streams (stream_id, created) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (stream_id, time.time()),
            )
            return cursor.rowcount > 0

    def remove_stream(self, stream_id: str) -> bool:
        with self._transaction() as db:
            db.execute("DELETE FROM events WHERE stream_id = ?", (stream_id,))
            return db.execute("DELETE FROM streams WHERE stream_id = ?", (stream_id,)).rowcount > 0

    # -- events -----------------------------------------------------------------

    def lease(self, stream_id: str, *, max_events: int, lease_seconds: float) -> list[EventRecord]:
        """Lease up to ``max_events`` deliverable events, oldest first.

        An expired lease whose attempts are used up comes back once more, with
        ``attempts`` above ``max_attempts``: the runtime dead-letters it (and records
        why) instead of processing it, since the replica holding it died on it every time.
        """
        now = time.time()
        with self._transaction() as db:
            rows = db.execute(
                "UPDATE events SET state = ?, attempts = attempts + 1, lease_until = ?, "
                "updated = ? WHERE id IN (SELECT id FROM events WHERE stream_id = ? AND "
                "(state = ? OR (state = ? AND lease_until < ?)) ORDER BY id LIMIT ?) "
                "RETURNING *",
                (
                    LEASED,
                    now + lease_seconds,
                    now,
                    stream_id,
                    PENDING,
                    LEASED,
                    now,
                    max_events,
                ),
            ).fetchall()
        return sorted((_event(row) for row in rows), key=lambda e: e.id)

    def ack(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        with self._transaction() as db:
            db.execute(
                f"UPDATE events SET state = ?, updated = ?, last_error = NULL "
                f"WHERE id IN ({marks}) AND state = ?",
                (DONE, time.time(), *ids, LEASED),
            )

    def nack(self, event_id: int, *, error: str, retryable: bool, max_attempts: int) -> str:
        """Release a failed event for redelivery, or dead-letter it; the new state."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT attempts FROM events WHERE id = ? AND state = ?",
                (event_id, LEASED),
            ).fetchone()
            if row is None:
                return "gone"
            state = PENDING if retryable and row[0] < max_attempts else DEAD
            db.execute(
                "UPDATE events SET state = ?, lease_until = 0, last_error = ?, updated = ? "
                "WHERE id = ?",
                (state, error, time.time(), event_id),
            )
        if state == PENDING:
            self._notify()
        return state

    def extend(self, ids: Sequence[int], *, seconds: float) -> None:
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        with self._transaction() as db:
            db.execute(
                f"UPDATE events SET lease_until = ? WHERE id IN ({marks}) AND state = ?",
                (time.time() + seconds, *ids, LEASED),
            )

    def release_all(self, stream_id: str) -> int:
        with self._transaction() as db:
            count = db.execute(
                "UPDATE events SET state = ?, lease_until = 0 WHERE stream_id = ? AND state = ?",
                (PENDING, stream_id, LEASED),
            ).rowcount
        self._notify()
        return count

    def counts(self, stream_id: str) -> dict[str, int]:
        """Events per state; ``done`` includes the compacted ones."""
        db = self._db()
        rows = db.execute(
            "SELECT state, n FROM state_counts WHERE stream_id = ? AND n > 0", (stream_id,)
        )
        counts = {state: count for state, count in rows}
        compacted = db.execute(
            "SELECT value FROM counters WHERE name = ?", (_compacted(stream_id),)
        ).fetchone()
        if compacted:
            counts[DONE] = counts.get(DONE, 0) + compacted[0]
        return counts

    def oldest_pending(self, stream_id: str) -> float | None:
        """When the first-journaled pending event was journaled (its ``event_time``), or
        None when nothing is pending. Pending events have ``lease_until`` 0, so this is
        one step down the state index, however long the backlog."""
        row = (
            self._db()
            .execute(
                "SELECT event_time FROM events WHERE stream_id = ? AND state = ? "
                "ORDER BY lease_until, id LIMIT 1",
                (stream_id, PENDING),
            )
            .fetchone()
        )
        return None if row is None else float(row[0])

    def compact(self, stream_id: str, *, older_than: float, batch: int = 5000) -> int:
        """Delete done events finished before ``older_than`` (a time.time()); how many.

        Only done events go: pending, leased and dead ones are never touched. A file's
        row in ``objects`` (its key and generation) stays, so an unchanged file is never
        journaled again; ``counts`` keeps counting the deleted ones as done. Batches keep
        each write transaction short.
        """
        removed = 0
        while True:
            with self._transaction() as db:
                count = db.execute(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE stream_id = ? "
                    "AND state = ? AND updated < ? LIMIT ?)",
                    (stream_id, DONE, older_than, batch),
                ).rowcount
                if count:
                    db.execute(
                        "INSERT INTO counters (name, value) VALUES (?, ?) "
                        "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                        (_compacted(stream_id), count),
                    )
            removed += count
            if count < batch:
                return removed

    def dead(self, stream_id: str, *, limit: int) -> list[EventRecord]:
        rows = self._db().execute(
            "SELECT * FROM events WHERE stream_id = ? AND state = ? ORDER BY updated DESC LIMIT ?",
            (stream_id, DEAD, limit),
        )
        return [_event(row) for row in rows]

    def retry(self, stream_id: str, ids: Sequence[int] | None) -> int:
        """Move dead events (all when ``ids`` is None) back to pending, attempts reset."""
        query = "UPDATE events SET state = ?, attempts = 0, lease_until = 0, updated = ? "
        query += "WHERE stream_id = ? AND state = ?"
        params: list[Any] = [PENDING, time.time(), stream_id, DEAD]
        if ids is not None:
            if not ids:
                return 0
            query += f" AND id IN ({','.join('?' * len(ids))})"
            params.extend(ids)
        with self._transaction() as db:
            count = db.execute(query, params).rowcount
        self._notify()
        return count


def _unpublish(published: list[tuple[_Write, Path]]) -> None:
    """Take back the files of a group whose commit failed, durably (best effort)."""
    for write, path in published:
        try:
            write.unpublish()
        except OSError as exc:
            logger.error(
                "could not take back %s after its journal commit failed (%s): the folder "
                "scan at the next start will journal it as a new file",
                path,
                exc,
            )
    for folder in {path.parent for _, path in published}:
        with contextlib.suppress(OSError):
            fsync_dir(folder)


def fsync_dir(path: Path) -> None:
    """Make the entries of folder ``path`` (a rename into it) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _compacted(stream_id: str) -> str:
    return f"compacted_done:{stream_id}"


def _event(row: sqlite3.Row) -> EventRecord:
    return EventRecord(
        id=row["id"],
        key=row["key"],
        generation=row["generation"],
        size=row["size"],
        event_time=row["event_time"],
        metadata=json.loads(row["metadata"]),
        state=row["state"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        updated=row["updated"],
    )
