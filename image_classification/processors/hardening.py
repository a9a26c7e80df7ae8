"""Small defences of the HTTP service: response headers, login throttling, byte ranges.

* ``NoSniffMiddleware`` adds ``X-Content-Type-Options: nosniff`` to every response (the JSON
  API included), so a browser never guesses a type other than the declared one.
* ``LoginThrottle``: at most ``LOGIN_MAX_FAILURES`` wrong tokens per client address in
  ``LOGIN_WINDOW_SECONDS``; past that ``/login`` answers 429 with ``Retry-After`` (right
  token or not) until the oldest failure leaves the window.
* ``byte_range``: a single ``Range: bytes=a-b`` of an in-memory body (thumbnails).
"""

from __future__ import annotations

import collections
import math
import re
import threading
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOGIN_MAX_FAILURES = 10
LOGIN_WINDOW_SECONDS = 60.0
_MAX_TRACKED_CLIENTS = 10_000


class NoSniffMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-content-type-options" for name, _ in headers):
                    headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_header)


class LoginThrottle:
    """Failed logins per client, in a sliding window (thread-safe, bounded memory)."""

    def __init__(
        self, *, max_failures: int = LOGIN_MAX_FAILURES, window: float = LOGIN_WINDOW_SECONDS
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self._failures: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Seconds until ``client`` may try again, or None when it may try now."""
        now = time.monotonic()
        with self._lock:
            times = self._failures.get(client)
            if times is None:
                return None
            while times and times[0] <= now - self.window:
                times.popleft()
            if not times:
                del self._failures[client]
                return None
            if len(times) < self.max_failures:
                return None
            return max(1, math.ceil(times[0] + self.window - now))

    def failed(self, client: str) -> None:
        with self._lock:
            times = self._failures.pop(client, None) or collections.deque()
            times.append(time.monotonic())
            self._failures[client] = times  # most recently failed last
            while len(self._failures) > _MAX_TRACKED_CLIENTS:
                self._failures.popitem(last=False)


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
# Any position with more digits lies past every body; int() of 4,300+ digits would raise.
_MAX_POSITION_DIGITS = 18
_PAST_ANY_BODY = 10**_MAX_POSITION_DIGITS


def _position(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return _PAST_ANY_BODY if len(digits) > _MAX_POSITION_DIGITS else int(digits)


def byte_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """The inclusive ``(first, last)`` byte of a single-range ``Range`` header.

    None: no usable range (absent, another unit, several ranges): send the whole body.
    False: a well-formed range that lies outside the body: answer 416.
    """
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        count = _position(last)
        if count == 0:
            return False
        return max(0, size - count), size - 1
    start = _position(first)
    end = _position(last) if last else size - 1
    if end < start and last:
        return None  # invalid: ignored, as RFC 9110 allows
    if start >= size:
        return False
    return start, min(end, size - 1)
