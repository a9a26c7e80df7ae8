"""One DuckDB database instance per file per process.

DuckDB allows a single writing process per file, so the run process opens the file
once and every reader and writer in it takes a cursor from that connection.
"""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb

from tideflow.exceptions import TideflowError

_connections: dict[Path, duckdb.DuckDBPyConnection] = {}
_lock = threading.Lock()


class WarehouseBusyError(TideflowError):
    """Another process holds the DuckDB file."""


def shared_connection(path: Path) -> duckdb.DuckDBPyConnection:
    path = path.resolve()
    with _lock:
        if path not in _connections:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                _connections[path] = duckdb.connect(str(path))
            except duckdb.IOException as exc:
                raise WarehouseBusyError(
                    f"cannot open the DuckDB file {path}: another process holds it "
                    f"(is `tideflow run` running? query through it or stop it). {exc}"
                ) from exc
        return _connections[path]


def close_shared(path: Path) -> None:
    with _lock:
        connection = _connections.pop(path.resolve(), None)
    if connection is not None:
        connection.close()
