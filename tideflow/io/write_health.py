"""Whether this process can write to its local stores now, for ``/healthz``.

A store whose write fails for a reason of the disk (full, over quota, read-only, I/O
errors) reports it with ``WriteHealth.failed``. From then on ``write_problems()`` names it
until the store's probe, run at most once every ``PROBE_EVERY_SECONDS`` while someone asks,
succeeds: a small real write, on a disk with at least ``MIN_FREE_BYTES`` free. One
successful write does not clear it: on a nearly full disk small writes (an ack) can still
fit while uploads do not, and the state would flap with each of them.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

MIN_FREE_BYTES = 1 << 20
PROBE_EVERY_SECONDS = 1.0

_OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)


class WriteHealth:
    """One store's write state: the reason of its last failure until a probe succeeds.

    ``probe`` writes a little and returns what is still wrong, or None.
    """

    def __init__(self, name: str, probe: Callable[[], str | None]) -> None:
        self.name = name
        self._probe = probe
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._failures = 0
        self._next_probe = 0.0

    def failed(self, reason: str) -> None:
        with self._lock:
            self._reason = reason
            self._failures += 1
            self._next_probe = time.monotonic() + PROBE_EVERY_SECONDS

    def problem(self) -> str | None:
        """The reason writes fail, re-probed when it is due; None when they work."""
        with self._lock:
            if self._reason is None or time.monotonic() < self._next_probe:
                return self._reason
            self._next_probe = time.monotonic() + PROBE_EVERY_SECONDS
            failures = self._failures
        try:
            still = self._probe()
        except Exception as exc:  # a probe must never break /healthz
            still = write_failure_reason(exc)
        with self._lock:
            if self._failures == failures:  # else a write failed meanwhile: that one stands
                self._reason = still
            return self._reason


_stores: dict[Path, WriteHealth] = {}
_stores_lock = threading.Lock()


def write_health(path: Path, name: str, probe: Callable[[], str | None]) -> WriteHealth:
    """The process-wide ``WriteHealth`` of the store at ``path``, shown as ``name`` (no
    path: /healthz is open to anyone); made on first use."""
    with _stores_lock:
        if path not in _stores:
            _stores[path] = WriteHealth(name, probe)
        return _stores[path]


def write_problems() -> list[str]:
    """``"<store>: <reason>"`` for each store whose writes fail now."""
    with _stores_lock:
        stores = list(_stores.values())
    return [f"{store.name}: {reason}" for store in stores if (reason := store.problem())]


def out_of_space(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk is full or over quota (SQLite says SQLITE_FULL)."""
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL"
    return isinstance(exc, OSError) and exc.errno in _OUT_OF_SPACE


def write_failure_reason(exc: BaseException) -> str:
    """A few words on why a write failed: ``disk full``, ``read-only``, the OS's text."""
    if out_of_space(exc):
        return "disk full" if getattr(exc, "errno", None) != errno.EDQUOT else "disk quota exceeded"
    if isinstance(exc, OSError):
        if exc.errno == errno.EROFS:
            return "read-only file system"
        return (exc.strerror or str(exc)).lower()
    if isinstance(exc, sqlite3.Error):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def free_space_problem(folder: Path) -> str | None:
    """``disk full`` when the file system of ``folder`` has less than ``MIN_FREE_BYTES``."""
    info = os.statvfs(folder)
    free = info.f_bavail * info.f_frsize
    return None if free >= MIN_FREE_BYTES else f"disk full ({free // 1024} KB free)"
