"""Cross-site request forgery: who may send a state-changing request with the login cookie.

A browser attaches the ``SameSite=Strict`` login cookie to requests from any page of the
same *site*, and a site ignores the port: a page on ``http://127.0.0.1:9999`` can make the
browser ``POST`` to ``http://127.0.0.1:8000/image-upload`` with the cookie. So a request
that is not a safe method (GET, HEAD, OPTIONS) and does not carry the Bearer token is
accepted only with one of:

1. an ``X-CSRF-Token`` header equal to ``csrf_token(API_TOKEN)``; our pages embed it in
   ``<meta name="csrf-token">`` and ``app.js`` sends it. Other origins cannot read it;
2. ``Sec-Fetch-Site: same-origin`` (or ``none``: typed by the user), which browsers set
   and pages cannot forge;
3. without ``Sec-Fetch-Site`` (older browsers), an ``Origin`` header equal to this
   server's own origin (scheme, host and port of the request).

A cookie-authenticated request with none of these (a script without the token, or a
browser-less client replaying a cookie) is refused with 403. Bearer-token requests are
not checked: a browser never adds that header by itself. With ``API_TOKEN`` unset there
is no cookie to abuse, but a request that *says* it comes from another origin (rules 2 and
3) is still refused, so other sites cannot make visitors' browsers upload to an open app.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import HTTPException, Request
from pydantic import SecretStr

CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CSRF_PURPOSE = b"image-classification csrf v1"
_REFUSED = (
    "Cross-site request refused: a state-changing request with the login cookie must come "
    "from this site's own pages (send the X-CSRF-Token header, or use the Bearer token)."
)


def csrf_token(token: SecretStr | None) -> str:
    """The value our pages send back in ``X-CSRF-Token`` ("" when there is no API token)."""
    if token is None:
        return ""
    key = token.get_secret_value().encode()
    return hmac.new(key, _CSRF_PURPOSE, hashlib.sha256).hexdigest()


def own_origin(request: Request) -> str:
    """``scheme://host[:port]`` as the client addressed this server (from the Host header)."""
    return f"{request.url.scheme}://{request.url.netloc}".lower()


def check_csrf(request: Request, token: SecretStr | None, *, cookie_auth: bool) -> None:
    """Raise 403 unless a non-safe request is shown to come from this site (see above)."""
    if request.method in SAFE_METHODS:
        return
    if token is not None:
        sent = request.headers.get(CSRF_HEADER, "")
        if sent and hmac.compare_digest(sent.encode(), csrf_token(token).encode()):
            return
    fetch_site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if fetch_site is not None:
        verified = fetch_site.lower() in ("same-origin", "none")
    elif origin is not None:
        verified = origin.lower() == own_origin(request)
    else:
        # No browser said where this comes from: fine for a plain client of an open app,
        # not for one replaying the login cookie without the CSRF token.
        verified = not cookie_auth
    if not verified:
        raise HTTPException(status_code=403, detail=_REFUSED)
