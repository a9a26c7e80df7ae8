"""A request-body size limit for upload endpoints, enforced while the body streams in.

A declared ``Content-Length`` over the limit is answered ``413`` before any byte is read.
Without one (chunked uploads), or when it lies, bytes are counted as they arrive and the
request is cut off with ``413`` as soon as the count passes the limit. Either way the server
never holds more than the limit of one upload, and Starlette spools that to disk past 1 MB.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Multipart framing around the file: boundaries, part headers and a long file name.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class _BodyTooLargeError(Exception):
    pass


class BodySizeLimitMiddleware:
    """Answer ``413`` to POSTs to ``paths`` whose body could not hold a file of at most
    ``max_file_bytes``; ``on_reject(path)`` runs for each one (to count them)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: frozenset[str],
        max_file_bytes: int,
        on_reject: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.paths = paths
        self.max_file_bytes = max_file_bytes
        self.max_body_bytes = max_file_bytes + MULTIPART_OVERHEAD_BYTES
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._reject(scope, send)
            return

        received = 0
        exceeded = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    exceeded = True
                    raise _BodyTooLargeError
            return message

        async def guarded_send(message: Message) -> None:
            # Once the limit is passed, whatever the app answers (FastAPI turns the
            # interrupted body into a 400) is replaced by the 413 below.
            if not exceeded:
                await send(message)

        with contextlib.suppress(_BodyTooLargeError):
            await self.app(scope, counting_receive, guarded_send)
        if exceeded:
            await self._reject(scope, send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        if self.on_reject is not None:
            self.on_reject(scope["path"])
        body = json.dumps({"detail": too_large_message(self.max_file_bytes)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    # The rest of the body is not read, so the connection cannot be reused.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def too_large_message(max_file_bytes: int) -> str:
    return f"The file is larger than the {max_file_bytes / (1024 * 1024):g} MB limit."


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
