"""Calls to the running app's admin API (``tideflow.runtime.admin``) on its Unix socket.

The standard library's HTTP client, not httpx: this module is on the path of quick
commands such as ``tideflow status``, and importing httpx alone takes ~100 ms.
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

from tideflow.exceptions import ConfigError


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: Path, timeout: float) -> None:
        super().__init__("tideflow", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.socket_path))


def ask_running(
    sock: Path, path: str, payload: dict[str, Any], *, timeout: float = 60
) -> dict[str, Any]:
    """POST ``payload`` as JSON to ``path``; the JSON answer, or ``ConfigError``."""
    connection = _UnixConnection(sock, timeout)
    try:
        connection.request(
            "POST", path, body=json.dumps(payload), headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        status, body = response.status, response.read()
    except (OSError, http.client.HTTPException) as exc:  # refused, gone, cut short, timeout
        raise ConfigError(f"cannot reach the running app through {sock}: {exc}") from exc
    finally:
        connection.close()
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if status != 200:
        detail = answer.get("detail") if isinstance(answer, dict) else None
        raise ConfigError(str(detail or body.decode(errors="replace")))
    if not isinstance(answer, dict):
        raise ConfigError(f"the running app answered {path} with {body[:200]!r}")
    return answer
