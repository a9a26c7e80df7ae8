"""A private HTTP API on a Unix socket, so CLI commands can read through the running app.

DuckDB lets one process open its file; while ``tideflow run`` holds it,
``tideflow query`` sends its query here instead, and ``tideflow status`` asks for its
counts here without importing the flow.

The API runs SQL and writes files as the run process's user, so only that user (and
root) may use it, behind two locks: the socket file is 0600 from the moment it exists
(bound and narrowed before it listens), and each connection's peer uid (``SO_PEERCRED``)
is checked before a byte is read. The socket is ``admin.sock`` in the stack's state
directory, or, when that path is too long for a socket name, in a private directory
(0700, random name) under the temp folder, which the run removes when it stops; either
way ``run.json`` names it for the clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

from tideflow.exceptions import TideflowError
from tideflow.io.failures import FailureLog, retry_dead_letters
from tideflow.io.strategies import DEFAULT_QUERY_ROWS, DeadLetterQueue, ItemFilter, TableReader
from tideflow.runtime.status import StatusRow

logger = logging.getLogger("tideflow.admin")

SOCKET_NAME = "admin.sock"
# sun_path holds 108 bytes on Linux (104 on macOS), its terminating NUL included.
_MAX_SOCKET_PATH = 100


@contextlib.contextmanager
def admin_socket_path(home: Path) -> Iterator[Path]:
    """Where this run's admin socket goes; a private directory made for it (when the
    state directory's path is too long) is removed on exit, socket and all."""
    path = home / SOCKET_NAME
    if len(str(path)) <= _MAX_SOCKET_PATH:
        yield path
        return
    private = Path(tempfile.mkdtemp(prefix="tideflow-"))  # 0700, a name no one can guess
    try:
        yield private / SOCKET_NAME
    finally:
        shutil.rmtree(private, ignore_errors=True)


def bind_owner_only(path: Path) -> socket.socket:
    """A Unix socket bound at ``path`` with mode 0600, not yet listening: no one can
    connect before its mode is narrowed (Uvicorn's own ``uds`` makes it 0666)."""
    path.unlink(missing_ok=True)  # one left by a run that was killed
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
    except BaseException:
        sock.close()
        raise
    return sock


def allowed_uids() -> frozenset[int]:
    """Who may use the admin API: the run process's user, and root (who can read its
    files and trace it anyway)."""
    return frozenset({os.geteuid(), 0})


class OwnerOnlyH11Protocol(H11Protocol):
    """Uvicorn's h11 protocol that hangs up on a peer whose uid is not allowed."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _ = struct.unpack("3i", credentials)
        if uid not in allowed_uids():
            logger.warning(
                "refused a connection to the admin socket from uid %d (pid %d): only the run's "
                "user (uid %d) and root may use it",
                uid,
                pid,
                os.geteuid(),
            )
            transport.close()


def admin_app(
    reader: TableReader,
    *,
    failures: FailureLog,
    dead_letters: DeadLetterQueue,
    status: Callable[[], list[StatusRow]],
) -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    # A tideflow error, or the OS refusing a file (an export into a folder, a name too
    # long), is the caller's to fix: 400 with the message, which the CLI prints.
    @app.exception_handler(TideflowError)
    @app.exception_handler(OSError)
    def refused(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.post("/status")
    def consumers_status() -> Any:
        return {"consumers": status()}

    @app.post("/dead-letters/retry")
    def retry(ids: list[str] | None = Body(None, embed=True)) -> Any:
        return {"retried": retry_dead_letters(dead_letters, failures, ids)}

    @app.post("/query")
    def query(
        sql: str = Body(...),
        write: bool = Body(False),
        max_rows: int = Body(DEFAULT_QUERY_ROWS),
    ) -> Any:
        found = reader.user_query(sql, allow_writes=write, max_rows=max_rows)
        return jsonable_encoder(found)

    @app.post("/select")
    def select(
        item: dict[str, Any] | None = Body(None),
        order_by: str | None = Body(None),
        limit: int = Body(20),
        offset: int = Body(0),
    ) -> Any:
        result = reader.select(
            item=ItemFilter(**item) if item else None,
            order_by=order_by,
            limit=limit,
            offset=offset,
        )
        return jsonable_encoder(result)

    @app.post("/export")
    def export(
        path: str = Body(...),
        format: str = Body("csv"),
        item: dict[str, Any] | None = Body(None),
        order_by: str | None = Body(None),
    ) -> Any:
        rows = reader.export(
            Path(path),
            format,
            item=ItemFilter(**item) if item else None,
            order_by=order_by,
        )
        return {"rows": rows}

    return app
