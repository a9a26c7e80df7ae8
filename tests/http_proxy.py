"""A loopback HTTP proxy in front of an emulator that answers chosen requests itself.

Some answers of the real services no emulator gives: a 403 quota error, a partial
insertAll failure with ``stopped`` rows, a dataset in another location, an organisation
policy refusing a bucket change. Clients that take an endpoint (``BIGQUERY_EMULATOR_HOST``,
``STORAGE_EMULATOR_HOST``) are pointed at this proxy instead of the emulator; every request
goes through unchanged except those a rule takes, which get the real service's JSON answer
(as ``tcp_proxy.TcpProxy`` cuts the network for the gRPC and TCP clients)::

    def quota(request: Request, forward: Forward) -> Reply | None:
        if request.method == "POST" and request.path.endswith("/insertAll"):
            return Reply(403, {"error": {...}})
        return None  # goes to the emulator as it is

    proxy = HttpProxy(emulator_url, quota)

A rule may also call ``forward(body)`` to send a changed request on and build its reply
from the emulator's. ``requests`` lists every request seen, in order. A reply whose body is
``bytes`` is sent as it is, with its ``content_type``: the XML of S3 and STS in front of
moto (``AWS_ENDPOINT_URL_S3`` and the like point at the proxy).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str  # with the query string
    headers: dict[str, str]
    body: bytes

    @property
    def route(self) -> str:
        """The path without the query string."""
        return urllib.parse.urlsplit(self.path).path

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # JSON, or bytes sent as they are
    content_type: str = "application/json"


def google_error(status: int, reason: str, message: str) -> Reply:
    """A Google JSON API error, as BigQuery and Cloud Storage send it."""
    error = {"message": message, "domain": "global", "reason": reason}
    return Reply(status, {"error": {"code": status, "message": message, "errors": [error]}})


Forward = Callable[[bytes], Reply]
Rule = Callable[[Request, Forward], Reply | None]


class HttpProxy:
    def __init__(self, target_url: str, *rules: Rule) -> None:
        target = urllib.parse.urlsplit(target_url)
        self.target = (target.hostname or "127.0.0.1", target.port or 80)
        self.rules = list(rules)
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="http-proxy", daemon=True).start()

    def seen(self, method: str, route_end: str) -> list[Request]:
        """The requests seen with this method whose path (without query) ends so."""
        with self._lock:
            return [r for r in self.requests if r.method == method and r.route.endswith(route_end)]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _send(self, request: Request, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.target, timeout=120)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            connection.request(request.method, request.path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command, self.path, dict(self.headers.items()), self.rfile.read(length)
                )
                with proxy._lock:
                    proxy.requests.append(request)
                    rules = list(proxy.rules)

                def forward(body: bytes) -> Reply:
                    status, _, answer = proxy._send(request, body)
                    return Reply(status, json.loads(answer or b"null"))

                for rule in rules:
                    reply = rule(request, forward)
                    if reply is not None:
                        data = reply.body
                        if not isinstance(data, bytes):
                            data = json.dumps(data).encode()
                        self._answer(reply.status, [("Content-Type", reply.content_type)], data)
                        return
                status, headers, data = proxy._send(request, request.body)
                self._answer(status, headers, data)

            def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                length = str(len(data))
                for name, value in headers:
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                    elif name.lower() == "content-length" and self.command == "HEAD":
                        length = value  # a HEAD answer announces the object, with no body
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            # http.server dispatches on these names.
            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle  # noqa: N815

        return Handler
