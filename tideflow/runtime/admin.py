"""A private HTTP API on a Unix socket, so commands and scripts read through the running app.

DuckDB lets one process open its file; while ``tideflow run`` holds it, every read of a
project (``tideflow.project``: queries, exports, dead letters, status) is sent here and
answered by the run's ``LocalAccess``; ``tideflow status`` asks without importing the flow.

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
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from tideflow.exceptions import TideflowError
from tideflow.runtime import wire
from tideflow.runtime.access import FlowAccess

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


# What a client may call: the methods of ``TableReader`` and ``DeadLetterQueue`` (and the
# reader's ``dialect``, an attribute: it travels as its name).
TABLE_CALLS = frozenset({"query", "user_query", "select", "count", "export", "dialect"})
DEAD_LETTER_CALLS = frozenset({"list", "retry", "count"})


def admin_app(access: FlowAccess) -> Starlette:
    """``access`` (the run's ``LocalAccess``) over HTTP, for ``RemoteAccess``:

    - ``POST /status``: one row per consumer;
    - ``POST /tables/{name}/{call}``: ``TableReader`` calls on the flow's table ``name``;
    - ``POST /consumers/{name}/dead-letters/{call}``: ``DeadLetterQueue`` calls on a
      consumer's dead letters (a retry marks its failure log too).

    Bodies are the call's keyword arguments and answers ``{"result": ...}``, both in
    ``tideflow.runtime.wire``'s JSON.
    """

    async def status(request: Request) -> JSONResponse:
        return await _answer(access.status)

    return Starlette(
        routes=[
            Route("/status", status, methods=["POST"]),
            Route(
                "/tables/{name:path}/{call}",
                _calls(access.table, TABLE_CALLS, "table"),
                methods=["POST"],
            ),
            Route(
                "/consumers/{name:path}/dead-letters/{call}",
                _calls(access.dead_letters, DEAD_LETTER_CALLS, "dead-letter"),
                methods=["POST"],
            ),
        ],
        exception_handlers={TideflowError: _refused, OSError: _refused},
    )


def _refused(request: Request, exc: Exception) -> JSONResponse:
    """A tideflow error, or the OS refusing a file (an export into a folder, a name too
    long), is the caller's to fix: 400 with the message and the error's class, which
    the client raises again."""
    return _refusal(str(exc), 400, error=type(exc).__name__)


def _calls(
    target: Callable[[str], Any], allowed: frozenset[str], noun: str
) -> Callable[[Request], Awaitable[JSONResponse]]:
    """An endpoint that runs method ``{call}`` of ``target({name})`` on the body's
    keyword arguments (or reads it, for an attribute), for the members ``allowed``."""

    async def endpoint(request: Request) -> JSONResponse:
        name, call = request.path_params["name"], request.path_params["call"]
        if call not in allowed:
            return _refusal(f"no {noun} call {call!r}", 404)
        arguments = wire.decode(await request.json())
        member = getattr(target(name), call)
        return await _answer(lambda: member(**arguments) if callable(member) else member)

    return endpoint


async def _answer(call: Callable[[], Any]) -> JSONResponse:
    """``call``'s result, computed off the event loop (reads block)."""
    return JSONResponse({"result": wire.encode(await run_in_threadpool(call))})


def _refusal(detail: str, status_code: int, *, error: str = "") -> JSONResponse:
    return JSONResponse({"detail": detail, "error": error}, status_code=status_code)
