"""Uvicorn settings that hostile clients cannot hold open forever.

Uvicorn times out idle keep-alive connections but not a client that sends its request
headers a byte at a time (slowloris): ``GuardedH11Protocol`` closes a connection whose
request headers are not complete ``HEADER_TIMEOUT_SECONDS`` after its first byte (or after
the connection opened). Connections beyond ``MAX_CONNECTIONS`` are answered 503 by Uvicorn.
Both can be changed with ``TIDEFLOW_HTTP_HEADER_TIMEOUT`` and
``TIDEFLOW_HTTP_MAX_CONNECTIONS``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5
MAX_CONNECTIONS = 512
# Request line plus headers (h11's limit; 16 KB is Uvicorn's default too).
MAX_HEADER_BYTES = 16 * 1024


def header_timeout() -> float:
    return float(os.environ.get("TIDEFLOW_HTTP_HEADER_TIMEOUT") or HEADER_TIMEOUT_SECONDS)


def max_connections() -> int:
    return int(os.environ.get("TIDEFLOW_HTTP_MAX_CONNECTIONS") or MAX_CONNECTIONS)


class GuardedH11Protocol(H11Protocol):
    """Uvicorn's h11 protocol plus a deadline for each request's headers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout()
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # h11 leaves IDLE only once a request's headers are complete.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self._header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            if self.conn.our_state is h11.IDLE:
                body = b'{"detail":"Request headers took too long."}'
                self.transport.write(
                    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                    b"connection: close\r\ncontent-length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
            self.transport.close()


def server_options() -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` of the public HTTP server."""
    return {
        "http": GuardedH11Protocol,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "limit_concurrency": max_connections(),
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }
