"""``/docs`` that works offline: Swagger UI served from the installed ``swagger-ui-bundle-v2``.

FastAPI's own ``/docs`` loads Swagger UI from a CDN and starts it with an inline script;
here the page loads the bundle's files from ``/docs/assets/`` and a small start-up script
from ``/docs/init.js`` (it reads the OpenAPI URL from a ``data-`` attribute), so it works
without a network and under a Content-Security-Policy with ``script-src 'self'``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"

# Used when the service gives no headers of its own for the page.
DEFAULT_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

_INIT_JS = """\
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""


def swagger_ui_dir() -> Path | None:
    """The installed Swagger UI files, or None when the package is missing."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    path = Path(str(swagger_ui_path))
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def install(app: FastAPI, *, title: str, headers: Mapping[str, str] | None = None) -> bool:
    """Serve ``/docs`` from local files; False (FastAPI's docs kept) when none are installed.

    The app must have been created with ``docs_url=None``.
    """
    assets = swagger_ui_dir()
    if assets is None or app.openapi_url is None:
        return False
    page_headers = dict(headers or DEFAULT_HEADERS)
    openapi_url = app.openapi_url
    page = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{html.escape(title)} · API docs</title>
  <link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon-32x32.png">
  <script src="{ASSETS_PATH}/swagger-ui-bundle.js" defer></script>
  <script src="{DOCS_PATH}/init.js" defer></script>
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{html.escape(openapi_url)}"></div>
</body>
</html>
"""

    async def docs_page(request: Request) -> Response:
        return HTMLResponse(page, headers=page_headers)

    async def init_script(request: Request) -> Response:
        return Response(
            _INIT_JS,
            media_type="text/javascript",
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
        )

    app.add_route(DOCS_PATH, docs_page, include_in_schema=False)
    app.add_route(f"{DOCS_PATH}/init.js", init_script, include_in_schema=False)
    app.mount(ASSETS_PATH, StaticFiles(directory=assets), name="swagger-ui")
    return True
