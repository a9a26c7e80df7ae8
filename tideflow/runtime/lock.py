"""One ``tideflow run`` per stack state directory, and how other commands find it."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tideflow.exceptions import ConfigError
from tideflow.home import make_private_dir

LOCK_FILE = "run.lock"
INFO_FILE = "run.json"


@contextlib.contextmanager
def run_lock(home: Path, info: dict[str, Any]) -> Iterator[None]:
    """Hold the stack's run lock and publish ``info`` (pid, addresses) while running."""
    make_private_dir(home)
    handle = open(home / LOCK_FILE, "a+")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        other = running_info(home) or {}
        handle.close()
        raise ConfigError(
            f"another `tideflow run` (pid {other.get('pid', '?')}) already uses {home}; "
            "stop it first or set TIDEFLOW_HOME to another directory"
        ) from exc
    info_path = home / INFO_FILE
    try:
        info_path.write_text(json.dumps({"pid": os.getpid(), **info}))
        yield
    finally:
        info_path.unlink(missing_ok=True)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def running_info(home: Path) -> dict[str, Any] | None:
    """What the running ``tideflow run`` published, or None when none holds the lock."""
    lock_path = home / LOCK_FILE
    if not lock_path.exists():
        return None
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads((home / INFO_FILE).read_text())
            except (OSError, ValueError):
                return {}
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None
