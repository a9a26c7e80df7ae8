"""Request-body size limits, one per route, enforced while the body streams in.

Uploads may be ``MAX_UPLOAD_MB`` (plus multipart framing); every other body (the
corrections JSON, the login and correction forms) is small, ``SMALL_BODY_BYTES``. A declared
``Content-Length`` over the limit is answered ``413`` before any byte is read. Without one
(chunked bodies), or when it lies, bytes are counted as they arrive and the request is cut
off with ``413`` as soon as the count passes the limit. Either way the server never holds
more than one limit's worth of a body (Starlette spools uploads to disk past 1 MB).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Multipart framing around the file: boundaries, part headers and a long file name.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# Room for every valid corrections body (20 labels of 100 characters, each written as
# "\uXXXX" escapes of surrogate pairs: ~24 KB) and for the forms with a long "next" URL.
SMALL_BODY_BYTES = 32 * 1024


@dataclasses.dataclass(frozen=True)
class BodyLimit:
    max_bytes: int
    message: str  # the 413's detail


def upload_limit(max_file_bytes: int) -> BodyLimit:
    """The limit of a multipart body holding one file of at most ``max_file_bytes``."""
    return BodyLimit(max_file_bytes + MULTIPART_OVERHEAD_BYTES, too_large_message(max_file_bytes))


SMALL_BODY = BodyLimit(
    SMALL_BODY_BYTES,
    f"The request body is larger than {SMALL_BODY_BYTES // 1024} KB, the most this endpoint takes.",
)


class _BodyTooLargeError(Exception):
    pass


class BodySizeLimitMiddleware:
    """Answer ``413`` to a request whose body passes its path's limit (``limits``, else
    ``default``); ``on_reject(path)`` runs for each one (to count them)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: Mapping[str, BodyLimit],
        default: BodyLimit = SMALL_BODY,
        on_reject: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.limits = dict(limits)
        self.default = default
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        declared = _content_length(scope)
        if declared is not None and declared > limit.max_bytes:
            await self._reject(limit, scope, receive, send)
            return

        received = 0
        exceeded = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.max_bytes:
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
            await self._reject(limit, scope, receive, send)

    async def _reject(self, limit: BodyLimit, scope: Scope, receive: Receive, send: Send) -> None:
        if self.on_reject is not None:
            self.on_reject(scope["path"])
        # The rest of the body is not read, so the connection cannot be reused.
        response = JSONResponse({"detail": limit.message}, 413, {"Connection": "close"})
        await response(scope, receive, send)


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
