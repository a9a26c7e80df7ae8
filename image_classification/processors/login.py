"""``/login``: the page where a browser trades the API token for a session cookie.

The cookie holds an HMAC of the token (``processors/auth.py``); wrong tokens are
throttled per client address (``LoginThrottle``).
"""

from __future__ import annotations

from typing import Annotated

from image_classification.dependencies import SettingsDep
from image_classification.processors.auth import (
    SESSION_COOKIE,
    SESSION_MAX_AGE_SECONDS,
    safe_next,
    session_value,
    token_matches,
)
from image_classification.processors.hardening import LoginThrottle
from image_classification.processors.templates import PageRenderer
from tideflow import Router, Scope, dependency
from tideflow.requests import Form, Query, Request
from tideflow.responses import HTMLResponse, RedirectResponse, Response

LOGIN_PATH = "/login"

router = Router()
NextQuery = Annotated[str | None, Query(alias="next")]


@dependency(scope=Scope.REPLICA)
def login_throttle() -> LoginThrottle:
    return LoginThrottle()


@router.endpoint(LOGIN_PATH, response_class=HTMLResponse, include_in_schema=False)
def login_page(page: PageRenderer, settings: SettingsDep, next_path: NextQuery = None) -> Response:
    target = safe_next(next_path)
    if settings.api_token is None:
        return RedirectResponse(target, status_code=303)
    return page.render("login.html", title="Log in", next=target, error=None)


@router.endpoint(LOGIN_PATH, method="POST", response_class=HTMLResponse, include_in_schema=False)
def login(
    request: Request,
    page: PageRenderer,
    settings: SettingsDep,
    throttle: Annotated[LoginThrottle, login_throttle],
    token: Annotated[str, Form()] = "",
    form_next: Annotated[str | None, Form(alias="next")] = None,
    next_path: NextQuery = None,
) -> Response:
    target = safe_next(form_next or next_path)
    if settings.api_token is None:
        return RedirectResponse(target, status_code=303)
    client = request.client.host if request.client else "unknown"
    wait = throttle.retry_after(client)
    if wait is not None:
        return _too_many_logins(page, target, wait)
    if not token_matches(token, settings.api_token):
        throttle.failed(client)
        return page.render(
            "login.html", status_code=401, title="Log in", next=target, error="Wrong token."
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_value(settings.api_token),
        max_age=SESSION_MAX_AGE_SECONDS,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


def _too_many_logins(page: PageRenderer, target: str, wait: int) -> Response:
    response = page.render(
        "login.html",
        status_code=429,
        title="Log in",
        next=target,
        error=f"Too many wrong tokens from your address: try again in {wait} s.",
    )
    response.headers["Retry-After"] = str(wait)
    return response
