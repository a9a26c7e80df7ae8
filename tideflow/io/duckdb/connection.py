"""One DuckDB database instance per file per process, or brief connections.

DuckDB allows a single writing process per file, so the run process opens the file
once and every reader and writer in it takes a cursor from that connection.

``brief_connection`` is BuildFlow's way instead: open the file for one write or read
and close it, retrying while another process (or a read-only connection in this one)
holds it, so the app's own code may open the file between writes, as BuildFlow's
tutorial does with ``duckdb.connect(table.database, read_only=True)``.

Either way, tideflow's connections reach their database file and nothing else: SQL cannot
open other files (``read_csv``, ``COPY ... TO``, ``ATTACH``) or change settings, whoever
wrote it (``tideflow query`` included). DuckDB's own temp folder stays usable: it spills
there, and an export is written there before it is moved into place.
"""

from __future__ import annotations

import contextlib
import gc
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from tideflow.exceptions import WarehouseBusyError
from tideflow.home import make_private_dir

_connections: dict[Path, duckdb.DuckDBPyConnection] = {}
_lock = threading.Lock()


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(
        str(path), config={"enable_external_access": False, "lock_configuration": True}
    )


def shared_connection(path: Path) -> duckdb.DuckDBPyConnection:
    path = path.resolve()
    with _lock:
        if path not in _connections:
            make_private_dir(path.parent)
            try:
                _connections[path] = _connect(path)
            except duckdb.IOException as exc:
                raise WarehouseBusyError(
                    f"cannot open the DuckDB file {path}: another process holds it "
                    f"(is `tideflow run` running? query through it or stop it). {exc}"
                ) from exc
        return _connections[path]


def temp_folder(connection: duckdb.DuckDBPyConnection) -> Path:
    """The database's temp folder (made if missing): the one place besides its own file
    that a locked-down connection may write."""
    (folder,) = connection.execute("SELECT current_setting('temp_directory')").fetchone() or ("",)
    path = Path(folder)
    make_private_dir(path)
    return path


def close_shared(path: Path) -> None:
    with _lock:
        connection = _connections.pop(path.resolve(), None)
    if connection is not None:
        connection.close()


BRIEF_CONNECT_SECONDS = 30.0


@contextlib.contextmanager
def brief_connection(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection to ``path`` for one operation, closed after it."""
    make_private_dir(path.parent)
    deadline = time.monotonic() + BRIEF_CONNECT_SECONDS
    delay = 0.02
    connection = _try_connect(path)
    while connection is None:
        time.sleep(delay * random.uniform(0.5, 1.0))
        delay = min(delay * 2, 0.25)
        connection = _try_connect(path, final=time.monotonic() > deadline)
    try:
        yield connection
    finally:
        connection.close()


def _try_connect(path: Path, *, final: bool = False) -> duckdb.DuckDBPyConnection | None:
    try:
        return _connect(path)
    except duckdb.ConnectionException:
        # This process has the file open read-only. A connection the app dropped can
        # live on in a reference cycle (an exception's traceback holds its frame) until
        # the collector runs: collect, then try again at once, before the app opens
        # another one.
        gc.collect()
        try:
            return _connect(path)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if final:
                raise _busy(path, exc) from exc
    except duckdb.IOException as exc:  # another process holds the file
        if final:
            raise _busy(path, exc) from exc
    return None


def _busy(path: Path, exc: Exception) -> WarehouseBusyError:
    return WarehouseBusyError(
        f"cannot open the DuckDB file {path} for {BRIEF_CONNECT_SECONDS:.0f}s: "
        f"another connection holds it. {exc}"
    )
