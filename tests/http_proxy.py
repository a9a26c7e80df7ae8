"""A loopback HTTP proxy that can answer chosen requests itself: faults the emulators lack.

moto accepts what real AWS refuses now and then (a bucket notification while the new queue
policy propagates) and omits what real AWS returns (an empty ``<EventBridgeConfiguration/>``
in a bucket's notification configuration). A client pointed at this proxy (for example
``AWS_ENDPOINT_URL_S3``) reaches moto through it; ``answer(...)`` makes the proxy reply to
matching requests with a recorded body of the real service instead, and ``requests`` keeps
every request it saw (method, path with query, body) for the test to read.
"""

from __future__ import annotations

import dataclasses
import http.client
import http.server
import threading
from collections.abc import Callable

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes

    @property
    def query(self) -> str:
        return self.path.partition("?")[2]


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/xml"


@dataclasses.dataclass
class _Rule:
    matches: Callable[[Request], bool]
    reply: Callable[[Request], Reply]
    times: int | None  # None: every time


class HttpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.requests: list[Request] = []
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="http-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(
        self,
        matches: Callable[[Request], bool],
        reply: Reply | Callable[[Request], Reply],
        *,
        times: int | None = None,
    ) -> None:
        """Reply to the next ``times`` requests that match (every one when None)."""
        respond = reply if callable(reply) else (lambda _request: reply)
        with self._lock:
            self._rules.append(_Rule(matches, respond, times))

    def seen(self, matches: Callable[[Request], bool]) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if matches(r)]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _reply_for(self, request: Request) -> Reply | None:
        with self._lock:
            self.requests.append(request)
            for rule in self._rules:
                if rule.times != 0 and rule.matches(request):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule.reply(request)
        return None

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the test reads ``requests``."""

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                        data += self.rfile.read(size)
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return data
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _relay(self) -> None:
                body = self._body()
                request = Request(self.command, self.path, body)
                canned = proxy._reply_for(request)
                if canned is not None:
                    self.send_response(canned.status)
                    self.send_header("Content-Type", canned.content_type)
                    self.send_header("Content-Length", str(len(canned.body)))
                    self.end_headers()
                    self.wfile.write(canned.body)
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
                }
                headers["Content-Length"] = str(len(body))
                upstream = http.client.HTTPConnection(*proxy.target, timeout=60)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                    self.send_response(answer.status)
                    for name, value in answer.getheaders():
                        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                            self.send_header(name, value)
                    # HEAD answers announce the object's length but carry no body.
                    length = answer.getheader("Content-Length") if self.command == "HEAD" else None
                    self.send_header("Content-Length", length or str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay  # noqa: N815

        return Handler
