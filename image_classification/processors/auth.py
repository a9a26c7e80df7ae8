"""The optional API token: a Bearer header for clients, an HttpOnly cookie for the pages.

With ``API_TOKEN`` unset every request is allowed. The cookie holds an HMAC of the token,
not the token, and is ``SameSite=Strict``. SameSite does not separate ports of one host,
so state-changing requests authorized by the cookie also pass the CSRF check of
``processors/csrf.py``, whose middleware also answers 401 to such requests before their
body is read. ``require_token`` guards the routes that only read.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import HTTPException
from pydantic import SecretStr
from starlette.requests import HTTPConnection

from image_classification.dependencies import SettingsDep
from tideflow.dependencies import Scope, dependency
from tideflow.requests import Request

SESSION_COOKIE = "image_classification_session"
SESSION_MAX_AGE_SECONDS = 7 * 24 * 3600
TOKEN_REQUIRED = (
    "An API token is required: send 'Authorization: Bearer <token>' or log in at /login."
)
_SESSION_PURPOSE = b"image-classification login v1"


def session_value(token: SecretStr) -> str:
    """The cookie value that proves a browser logged in with ``token``."""
    key = token.get_secret_value().encode()
    return hmac.new(key, _SESSION_PURPOSE, hashlib.sha256).hexdigest()


def token_matches(candidate: str, token: SecretStr) -> bool:
    return hmac.compare_digest(candidate.encode(), token.get_secret_value().encode())


Credential = Literal["open", "bearer", "cookie"]


def authorized_by(request: HTTPConnection, token: SecretStr | None) -> Credential | None:
    """How the request is authorized: no token set, the Bearer header, the login cookie."""
    if token is None:
        return "open"
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token_matches(credentials.strip(), token):
        return "bearer"
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if hmac.compare_digest(cookie.encode(), session_value(token).encode()):
        return "cookie"
    return None


def is_authorized(request: HTTPConnection, token: SecretStr | None) -> bool:
    return authorized_by(request, token) is not None


@dependency(scope=Scope.NO_SCOPE)
def require_token(request: Request, settings: SettingsDep) -> None:
    """A tideflow dependency of each call: 401 unless the request carries the token (when
    one is set)."""
    if not is_authorized(request, settings.api_token):
        raise HTTPException(401, TOKEN_REQUIRED, headers={"WWW-Authenticate": "Bearer"})


Authorized = Annotated[None, require_token]


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else ``/`` (no open redirect after login)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(unicodedata.category(ch) == "Cc" for ch in target):
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target
