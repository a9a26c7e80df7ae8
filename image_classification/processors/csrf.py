"""Who may send a state-changing request: one rule for every route, checked before the body.

``WriteGuardMiddleware`` sees every request whose method is not safe (anything but GET,
HEAD, OPTIONS) before a byte of its body is read, whatever its route, so a new route cannot
forget the rule:

1. With ``API_TOKEN`` set, a request without the Bearer token or the login cookie gets
   ``401`` at once (only the ``open_paths``, ``/login``, take requests without them). A
   1 GB body is then never read, let alone parsed.
2. Cross-site request forgery. A browser attaches the ``SameSite=Strict`` login cookie to
   requests from any page of the same *site*, and a site ignores the port: a page on
   ``http://127.0.0.1:9999`` can make the browser ``POST`` to ``http://127.0.0.1:8000``
   with the cookie. So a request without the Bearer token passes only with one of:

   a. an ``X-CSRF-Token`` header equal to ``csrf_token(API_TOKEN)``; our pages embed it in
      ``<meta name="csrf-token">`` and ``app.js`` sends it. Other origins cannot read it;
   b. ``Sec-Fetch-Site: same-origin`` (or ``none``: typed by the user), which browsers set
      and pages cannot forge;
   c. without ``Sec-Fetch-Site`` (older browsers), an ``Origin`` header equal to this
      server's own origin (scheme, host and port of the request);
   d. none of these headers at all, from a client that holds no login cookie (curl against
      an open app, or ``/login``).

   Everything else is ``403``: a script without the token, a browser-less client replaying
   the cookie, and any request that *says* it comes from another origin (``Origin`` or
   ``Sec-Fetch-Site``), so other sites cannot make visitors' browsers post to an open app
   or log them in. Bearer-token requests are not checked: a browser never adds that header
   by itself.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from image_classification.processors.auth import TOKEN_REQUIRED, authorized_by

CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CSRF_PURPOSE = b"image-classification csrf v1"
CROSS_SITE_REFUSED = (
    "Cross-site request refused: a state-changing request must come from this site's own "
    "pages (with the login cookie: send the X-CSRF-Token header), or use the Bearer token."
)


def csrf_token(token: SecretStr | None) -> str:
    """The value our pages send back in ``X-CSRF-Token`` ("" when there is no API token)."""
    if token is None:
        return ""
    key = token.get_secret_value().encode()
    return hmac.new(key, _CSRF_PURPOSE, hashlib.sha256).hexdigest()


def own_origin(request: HTTPConnection) -> str:
    """``scheme://host[:port]`` as the client addressed this server (from the Host header)."""
    return f"{request.url.scheme}://{request.url.netloc}".lower()


def comes_from_this_site(
    request: HTTPConnection, token: SecretStr | None, *, cookie_auth: bool
) -> bool:
    """Rule 2 above, for a request that is not authorized by the Bearer token."""
    if token is not None:
        sent = request.headers.get(CSRF_HEADER, "")
        if sent and hmac.compare_digest(sent.encode(), csrf_token(token).encode()):
            return True
    fetch_site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if fetch_site is not None:
        return fetch_site.lower() in ("same-origin", "none")
    if origin is not None:
        return origin.lower() == own_origin(request)
    # No browser said where this comes from: fine for a plain client of an open app,
    # not for one replaying the login cookie without the CSRF token.
    return not cookie_auth


class WriteGuardMiddleware:
    """Rules 1 and 2 above for every request with a method that is not safe."""

    def __init__(
        self, app: ASGIApp, *, token: SecretStr | None, open_paths: frozenset[str]
    ) -> None:
        self.app = app
        self.token = token
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        request = HTTPConnection(scope)
        token = self.token
        credential = authorized_by(request, token)
        # The body is not read, so the connection cannot carry another request.
        headers = {"Connection": "close"}
        if credential is None and scope["path"] not in self.open_paths:
            refusal = JSONResponse(
                {"detail": TOKEN_REQUIRED}, 401, {**headers, "WWW-Authenticate": "Bearer"}
            )
        elif credential != "bearer" and not comes_from_this_site(
            request, token, cookie_auth=credential == "cookie"
        ):
            refusal = JSONResponse({"detail": CROSS_SITE_REFUSED}, 403, headers)
        else:
            await self.app(scope, receive, send)
            return
        await refusal(scope, receive, send)
