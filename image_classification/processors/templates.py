"""The HTML pages' templates (``templates/``), their static files and their headers.

Endpoints that answer a page ask for ``page: PageRenderer`` and return
``page.render("results.html", title=..., ...)``.
"""

from __future__ import annotations

import functools
import hashlib
import urllib.parse
from pathlib import Path
from typing import Any

import jinja2
from starlette.templating import Jinja2Templates

from image_classification.dependencies import SettingsDep
from image_classification.processors.csrf import csrf_token
from tideflow import Scope, dependency
from tideflow.requests import Request
from tideflow.responses import Response

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

# Pages load only this site's script and styles; previews of chosen files are blob: URLs.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
        "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@functools.cache
def static_url(name: str) -> str:
    """The URL of a static file, versioned by its content so browsers never use a stale one."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"/static/{urllib.parse.quote(name)}?v={digest}"


_templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)
_templates.env.globals["static_url"] = static_url


@dependency(scope=Scope.NO_SCOPE)
class PageRenderer:
    """Renders a template for this request, with what every page shows (login state,
    CSRF token) and the pages' headers."""

    def __init__(self, request: Request, settings: SettingsDep) -> None:
        self.request = request
        self.token = settings.api_token

    def render(self, template: str, *, status_code: int = 200, **context: Any) -> Response:
        context["auth_required"] = self.token is not None
        context["csrf_token"] = csrf_token(self.token)
        return _templates.TemplateResponse(
            self.request, template, context, status_code=status_code, headers=PAGE_HEADERS
        )
