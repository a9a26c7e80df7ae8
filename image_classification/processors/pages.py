"""The HTML pages: the upload page, the results page (with its correction form) and /stats.

Without the login cookie (when ``API_TOKEN`` is set) the results and stats pages send the
browser to ``/login``; the upload page stays open, its uploads need the token.
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated

from fastapi import HTTPException

from image_classification.dependencies import Failures, Objects, ResultsTable, SettingsDep
from image_classification.processors.auth import Authorized, is_authorized, safe_next
from image_classification.processors.corrections import (
    CorrectionsTable,
    checked_labels,
    classified_image,
    split_labels,
)
from image_classification.processors.login import LOGIN_PATH
from image_classification.processors.results import (
    MAX_FAILED_LISTED,
    list_results,
    models_in_table,
)
from image_classification.processors.results_api import (
    RESULTS_CSV_PATH,
    RESULTS_PAGE_PATH,
    CurrentModel,
    ResultsQueryDep,
    results_url,
)
from image_classification.processors.stats import UnsupportedWarehouseError, compute_stats
from image_classification.processors.templates import PageRenderer
from image_classification.processors.uploads import ACCEPTED_MIME_TYPES
from tideflow import Router, Scope, dependency
from tideflow.requests import Form, Request
from tideflow.responses import HTMLResponse, RedirectResponse, Response

CORRECTIONS_FORM_PATH = f"{RESULTS_PAGE_PATH}/corrections"

router = Router()


@dependency(scope=Scope.NO_SCOPE)
def require_login(request: Request, settings: SettingsDep) -> None:
    """Pages for browsers that logged in (when API_TOKEN is set): the others are sent to
    /login, and from there back to this page."""
    if not is_authorized(request, settings.api_token):
        here = urllib.parse.quote(f"{request.url.path}?{request.url.query}".rstrip("?"))
        raise HTTPException(303, "Log in first.", headers={"Location": f"{LOGIN_PATH}?next={here}"})


LoggedIn = Annotated[None, require_login]


@router.endpoint("/", response_class=HTMLResponse, include_in_schema=False)
def upload_page(page: PageRenderer, settings: SettingsDep) -> Response:
    return page.render(
        "index.html",
        title="Upload images",
        max_upload_mb=settings.max_upload_mb,
        top_k=settings.top_k,
        accepted_types=ACCEPTED_MIME_TYPES,
    )


@router.endpoint(RESULTS_PAGE_PATH, response_class=HTMLResponse, include_in_schema=False)
def results_page(
    request: Request,
    login: LoggedIn,
    page: PageRenderer,
    table: ResultsTable,
    failures: Failures,
    corrections: CorrectionsTable,
    current: CurrentModel,
    query: ResultsQueryDep,
) -> Response:
    wanted = query.filter(current)
    rows, total = list_results(wanted, table=table, failures=failures)
    shown = [row.image_id for row in rows if row.status == "classified"]
    limit, offset = wanted.limit, wanted.offset
    return page.render(
        "results.html",
        title="Results",
        rows=rows,
        total=total,
        label=wanted.label or "",
        q=wanted.q or "",
        csv_url=results_url(wanted, 0, path=RESULTS_CSV_PATH, paged=False),
        min_confidence=wanted.min_confidence,
        limit=limit,
        offset=offset,
        prev_url=results_url(wanted, max(0, offset - limit)) if offset > 0 else None,
        next_url=results_url(wanted, offset + limit) if offset + limit < total else None,
        models=models_in_table(table),
        current_model_id=current,
        model_id=wanted.model_id or "all",
        corrections=corrections.latest(shown),
        corrections_url=CORRECTIONS_FORM_PATH,
        here=f"{request.url.path}?{request.url.query}".rstrip("?"),
    )


@router.endpoint(CORRECTIONS_FORM_PATH, method="POST", include_in_schema=False)
def correct_from_page(
    auth: Authorized,
    table: ResultsTable,
    failures: Failures,
    objects: Objects,
    corrections: CorrectionsTable,
    image_id: Annotated[str, Form()],
    labels: Annotated[str, Form()] = "",
    form_next: Annotated[str | None, Form(alias="next")] = None,
) -> Response:
    """The results page's form (works without JavaScript): store, then back to the page.
    Like every POST it passes the CSRF check of ``processors/csrf.py`` first."""
    image = classified_image(image_id, table=table, failures=failures, objects=objects)
    corrections.record(image, checked_labels(split_labels(labels)), user="page")
    target = safe_next(form_next) if form_next else RESULTS_PAGE_PATH
    return RedirectResponse(target, status_code=303)


@router.endpoint("/stats", response_class=HTMLResponse, include_in_schema=False)
def stats_page(
    login: LoggedIn, page: PageRenderer, table: ResultsTable, failures: Failures
) -> Response:
    errors = [failure.error for failure in failures.list(limit=MAX_FAILED_LISTED, offset=0)]
    try:
        stats = compute_stats(table, errors, failed_total=failures.count())
    except UnsupportedWarehouseError as exc:
        raise HTTPException(501, str(exc)) from exc
    return page.render("stats.html", title="Stats", stats=stats)
