"""The HTTP service: the pages, the API and their guards, built from each concern's router.

Errors are JSON ``{"detail": "..."}``. With ``API_TOKEN`` set, everything that stores or
shows images needs ``Authorization: Bearer <token>`` or the login cookie; the upload page,
``/login``, ``/static``, ``/healthz``, ``/livez``, ``/metrics`` and ``/docs`` stay open.
"""

from __future__ import annotations

from starlette.staticfiles import StaticFiles

from image_classification.processors import (
    classify,
    corrections,
    login,
    pages,
    results_api,
    thumbnails,
    uploads,
)
from image_classification.processors.csrf import WriteGuardMiddleware
from image_classification.processors.errors import EXCEPTION_HANDLERS
from image_classification.processors.hardening import NoSniffMiddleware
from image_classification.processors.limits import BodySizeLimitMiddleware, upload_limit
from image_classification.processors.templates import PAGE_HEADERS, STATIC_DIR
from image_classification.settings import Settings
from tideflow import Service


def build_service(settings: Settings) -> Service:
    service = Service(
        service_id="image-classification", title="Image classification", version="1.0"
    )
    for module in (pages, uploads, results_api, thumbnails, classify, corrections, login):
        service.include_router(module.router)
    service.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    service.docs_headers = PAGE_HEADERS  # /docs (offline Swagger UI) under the pages' CSP
    # Outermost last: nosniff on every answer; then who may post (before any body is read);
    # then how much of a body each route reads.
    files = upload_limit(settings.max_upload_bytes)
    service.add_middleware(
        BodySizeLimitMiddleware,
        limits={uploads.UPLOAD_PATH: files, classify.CLASSIFY_PATH: files},
        on_reject=uploads.count_rejected,
    )
    service.add_middleware(
        WriteGuardMiddleware,
        token=settings.api_token,
        open_paths=frozenset({login.LOGIN_PATH}),
    )
    service.add_middleware(NoSniffMiddleware)
    for error, handler in EXCEPTION_HANDLERS.items():
        service.exception_handler(error)(handler)
    return service
