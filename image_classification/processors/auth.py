"""The optional API token: a Bearer header for clients, an HttpOnly cookie for the pages.

With ``API_TOKEN`` unset every request is allowed. The cookie holds an HMAC of the token,
not the token, and is ``SameSite=Strict``, so other sites cannot make a browser upload or
read results with it.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from pydantic import SecretStr

from image_classification.settings import get_settings

SESSION_COOKIE = "image_classification_session"
SESSION_MAX_AGE_SECONDS = 7 * 24 * 3600
_SESSION_PURPOSE = b"image-classification login v1"


def session_value(token: SecretStr) -> str:
    """The cookie value that proves a browser logged in with ``token``."""
    key = token.get_secret_value().encode()
    return hmac.new(key, _SESSION_PURPOSE, hashlib.sha256).hexdigest()


def token_matches(candidate: str, token: SecretStr) -> bool:
    return hmac.compare_digest(candidate.encode(), token.get_secret_value().encode())


def is_authorized(request: Request, token: SecretStr | None) -> bool:
    if token is None:
        return True
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token_matches(credentials.strip(), token):
        return True
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return hmac.compare_digest(cookie.encode(), session_value(token).encode())


def require_token(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries the token (when one is set)."""
    if not is_authorized(request, get_settings().api_token):
        raise HTTPException(
            status_code=401,
            detail="An API token is required: send 'Authorization: Bearer <token>' "
            "or log in at /login.",
            headers={"WWW-Authenticate": "Bearer"},
        )


Authorized = Annotated[None, Depends(require_token)]


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else ``/`` (no open redirect after login)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(unicodedata.category(ch) == "Cc" for ch in target):
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target
