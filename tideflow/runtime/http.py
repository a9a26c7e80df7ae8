"""Uvicorn settings that hostile clients cannot hold open forever, nor fool.

Uvicorn times out idle keep-alive connections but not a client that sends its request
headers a byte at a time (slowloris): ``GuardedH11Protocol`` closes a connection whose
request headers are not complete ``HEADER_TIMEOUT_SECONDS`` after its first byte (or after
the connection opened). It also answers ``431`` and closes the connection when a request's
line and headers pass ``MAX_HEADER_BYTES``, however they arrived: h11's own limit only
counts bytes buffered while the headers are incomplete, so a 100 KB block sent in one write
passed it. Connections beyond ``MAX_CONNECTIONS`` are answered 503 by Uvicorn. Both can be
changed with ``TIDEFLOW_HTTP_HEADER_TIMEOUT`` and ``TIDEFLOW_HTTP_MAX_CONNECTIONS``.

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only from the proxies that
``FORWARDED_ALLOW_IPS`` names (Uvicorn's setting: addresses or networks, comma-separated, or
``*``); by default from nobody. Uvicorn's own default trusts 127.0.0.1, which let any local
client pick the address the login throttle counts, and the scheme that decides whether
the login cookie is ``Secure``.
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


def forwarded_allow_ips() -> str:
    """The proxies trusted to say who the client is ("" : none)."""
    return os.environ.get("FORWARDED_ALLOW_IPS", "").strip()


def _header_bytes(request: h11.Request) -> int:
    """The size of ``request``'s line and headers as sent (less optional whitespace)."""
    line = len(request.method) + len(request.target) + len(request.http_version) + 8
    return line + sum(len(name) + len(value) + 4 for name, value in request.headers) + 2


class _HeaderBoundConnection(h11.Connection):
    """h11's server connection, refusing a request whose headers pass ``MAX_HEADER_BYTES``."""

    headers_too_large = False

    def next_event(self) -> Any:
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            # h11's own limit on an incomplete header block.
            self.headers_too_large = exc.error_status_hint == 431
            raise
        if isinstance(event, h11.Request) and _header_bytes(event) > MAX_HEADER_BYTES:
            self.headers_too_large = True
            raise h11.RemoteProtocolError("request headers too large", 431)
        return event


class GuardedH11Protocol(H11Protocol):
    """Uvicorn's h11 protocol plus a deadline and a size limit for each request's headers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _HeaderBoundConnection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
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

    def send_400_response(self, msg: str) -> None:
        if isinstance(self.conn, _HeaderBoundConnection) and self.conn.headers_too_large:
            self._answer_and_close(
                b"431 Request Header Fields Too Large",
                f"The request line and headers are larger than {MAX_HEADER_BYTES // 1024} KB.",
            )
        else:
            super().send_400_response(msg)

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
                self._answer_and_close(b"408 Request Timeout", "Request headers took too long.")
            else:
                self.transport.close()

    def _answer_and_close(self, status: bytes, detail: str) -> None:
        """Write a JSON error straight to the socket (outside h11: the request may be
        half-parsed) and close the connection."""
        body = ('{"detail":"' + detail + '"}').encode()
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
            b"x-content-type-options: nosniff\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        self.transport.close()


def server_options() -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` of the public HTTP server."""
    trusted_proxies = forwarded_allow_ips()
    return {
        "http": GuardedH11Protocol,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "limit_concurrency": max_connections(),
        "proxy_headers": bool(trusted_proxies),
        "forwarded_allow_ips": trusted_proxies or None,
    }
