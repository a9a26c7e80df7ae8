"""The running app's reads, through its admin socket (``tideflow.runtime.admin``).

``RemoteAccess`` is ``LocalAccess`` spoken over the socket: a ``RemoteTableReader`` is a
``TableReader`` and a ``RemoteDeadLetterQueue`` a ``DeadLetterQueue`` whose calls run in
the run process; values come back as they left (``tideflow.runtime.wire``) and its
tideflow errors as the same classes.

The standard library's HTTP client, not httpx: this module is on the path of quick
commands such as ``tideflow status``, and importing httpx alone takes ~100 ms.
"""

from __future__ import annotations

import functools
import http.client
import json
import socket
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tideflow import exceptions
from tideflow.exceptions import ConfigError, TideflowError
from tideflow.io.strategies import DeadLetterQueue, Dialect, TableReader
from tideflow.runtime import wire
from tideflow.runtime.access import FlowAccess, StatusRow
from tideflow.types import DeadLetter, QueryResult

TIMEOUT_SECONDS = 60.0
# The run process writes a whole table before it answers an export.
EXPORT_TIMEOUT_SECONDS = 3600.0

# The errors the run process sends back by name, raised here as the same class.
_ERRORS: dict[str, type[TideflowError]] = {
    name: value
    for name, value in vars(exceptions).items()
    if isinstance(value, type) and issubclass(value, TideflowError)
}


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: Path, timeout: float) -> None:
        super().__init__("tideflow", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.socket_path))


class AdminClient:
    """POSTs to the admin API on ``socket_path``."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    def call(
        self, path: str, arguments: dict[str, Any], *, timeout: float = TIMEOUT_SECONDS
    ) -> Any:
        """The answer to ``arguments`` sent to ``path``; the run's error raised here."""
        connection = _UnixConnection(self.socket_path, timeout)
        try:
            connection.request(
                "POST",
                path,
                body=json.dumps(wire.encode(arguments)),
                headers={"Content-Type": "application/json"},
            )
            response = connection.getresponse()
            status, body = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:  # refused, gone, cut short, timeout
            raise ConfigError(
                f"cannot reach the running app through {self.socket_path}: {exc}"
            ) from exc
        finally:
            connection.close()
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if status == 200 and isinstance(answer, dict) and "result" in answer:
            return wire.decode(answer["result"])
        if isinstance(answer, dict) and isinstance(answer.get("detail"), str):
            raise _ERRORS.get(answer.get("error", ""), ConfigError)(answer["detail"])
        raise ConfigError(f"the running app answered {path} with {status}: {body[:200]!r}")


def _quoted(name: str) -> str:
    return urllib.parse.quote(name, safe="")


class RemoteTableReader(TableReader):
    """The run process's reader of table ``name``: each call's options (and their
    defaults) are the ``TableReader``'s there."""

    def __init__(self, client: AdminClient, name: str) -> None:
        self.client = client
        self.name = name

    def _call(self, call: str, *, timeout: float = TIMEOUT_SECONDS, **arguments: Any) -> Any:
        return self.client.call(f"/tables/{_quoted(self.name)}/{call}", arguments, timeout=timeout)

    @functools.cached_property
    def dialect(self) -> Dialect:  # type: ignore[override]
        """The run process's reader's dialect, by name (the SQL its ``query`` speaks)."""
        dialect: Dialect = self._call("dialect")
        return dialect

    def query(self, sql: str, params: dict[str, Any] | None = None) -> QueryResult:
        result: QueryResult = self._call("query", sql=sql, params=params)
        return result

    def user_query(self, sql: str, **options: Any) -> QueryResult:
        result: QueryResult = self._call("user_query", sql=sql, **options)
        return result

    def select(self, **options: Any) -> QueryResult:
        result: QueryResult = self._call("select", **options)
        return result

    def count(self, **options: Any) -> int:
        return int(self._call("count", **options))

    def export(
        self,
        path: Path,
        fmt: str,
        *,
        progress: Callable[[int], None] | None = None,
        **options: Any,
    ) -> int:
        """Written by the run process, as its user, to ``path`` as seen from here."""
        target = Path(path).resolve()
        written = int(
            self._call("export", timeout=EXPORT_TIMEOUT_SECONDS, path=target, fmt=fmt, **options)
        )
        if progress is not None:
            progress(written)
        return written


class RemoteDeadLetterQueue(DeadLetterQueue):
    """The run process's dead letters of consumer ``consumer``."""

    def __init__(self, client: AdminClient, consumer: str) -> None:
        self.client = client
        self.consumer = consumer

    def _call(self, call: str, **arguments: Any) -> Any:
        return self.client.call(
            f"/consumers/{_quoted(self.consumer)}/dead-letters/{call}", arguments
        )

    def list(self, *, limit: int = 100) -> list[DeadLetter]:
        letters: list[DeadLetter] = self._call("list", limit=limit)
        return letters

    def retry(self, ids: Sequence[str] | None = None) -> int:
        return int(self._call("retry", ids=None if ids is None else list(ids)))

    def count(self) -> int:
        return int(self._call("count"))


class RemoteAccess(FlowAccess):
    """A running app's reads: every call goes to the run process."""

    def __init__(self, client: AdminClient) -> None:
        self.client = client

    def table(self, name: str) -> TableReader:
        return RemoteTableReader(self.client, name)

    def dead_letters(self, consumer: str) -> DeadLetterQueue:
        return RemoteDeadLetterQueue(self.client, consumer)

    def status(self) -> list[StatusRow]:
        rows = self.client.call("/status", {})
        return [tuple(row) for row in rows]
