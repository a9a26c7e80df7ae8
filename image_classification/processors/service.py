"""The HTTP service: upload page and API, status and results, thumbnails, /classify, login.

Errors are JSON ``{"detail": "..."}``. With ``API_TOKEN`` set, everything that stores or
shows images needs ``Authorization: Bearer <token>`` or the login cookie; the upload page,
``/login``, ``/static``, ``/healthz``, ``/livez``, ``/metrics`` and ``/docs`` stay open.
"""

from __future__ import annotations

import functools
import hashlib
import time
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import HTTPException
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from image_classification.dependencies import (
    FailuresDep,
    ModelDep,
    ObjectsDep,
    ResultsTableDep,
    SettingsDep,
)
from image_classification.image_ids import InvalidImageIdError, image_id_for, parse_image_id
from image_classification.model import InvalidImageError
from image_classification.processors.auth import (
    SESSION_COOKIE,
    SESSION_MAX_AGE_SECONDS,
    Authorized,
    is_authorized,
    safe_next,
    session_value,
    token_matches,
)
from image_classification.processors.classify_guard import ClassifySlots, check_pixel_budget
from image_classification.processors.csrf import WriteGuardMiddleware, csrf_token
from image_classification.processors.export import csv_file_name, stream_csv
from image_classification.processors.hardening import LoginThrottle, NoSniffMiddleware, byte_range
from image_classification.processors.limits import (
    SMALL_BODY_BYTES,
    BodySizeLimitMiddleware,
    too_large_message,
    upload_limit,
)
from image_classification.processors.metrics import CLASSIFY_REQUEST_SECONDS, UPLOADS
from image_classification.processors.results import (
    MAX_FAILED_LISTED,
    ImageResult,
    ImageStatus,
    Label,
    ResultsFilter,
    ResultsPage,
    find_image,
    list_results,
    models_in_table,
)
from image_classification.processors.stats import compute as compute_stats
from image_classification.processors.thumbnails import THUMBNAIL_PIXELS, make_thumbnail
from image_classification.processors.uploads import (
    ACCEPTED_MIME_TYPES,
    SNIFF_BYTES,
    ImageType,
    UploadTooLargeError,
    display_name,
    sniff_image_type,
    store_upload,
)
from image_classification.settings import Settings, get_settings
from tideflow import Service
from tideflow.exceptions import (
    BucketFullError,
    BucketUnavailableError,
    InvalidQueryError,
    ObjectNotFoundError,
)
from tideflow.io.strategies import MAX_SELECT_OFFSET
from tideflow.requests import File, Form, Query, Request, UploadFile
from tideflow.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
UPLOAD_PATH = "/image-upload"
CLASSIFY_PATH = "/classify"
RESULTS_PAGE_PATH = "/image-upload-results"
RESULTS_CSV_PATH = "/api/results.csv"
LOGIN_PATH = "/login"
MAX_PAGE_SIZE = 200
THUMBNAIL_SLOT_WAIT_SECONDS = 10.0

# Pages load only this site's script and styles; previews of chosen files are blob: URLs.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
        "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_IMAGE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"}
_UPLOAD_OUTCOMES = {
    400: "bad_request",
    413: "too_large",
    415: "not_an_image",
    503: "not_stored",
    507: "storage_full",
}
# What a client that was told "not stored" waits before sending the image again.
STORAGE_RETRY_AFTER_SECONDS = 10

ImageFile = Annotated[
    UploadFile | None,
    File(description="One image: JPEG, PNG, WebP, GIF, BMP or TIFF (checked from its bytes)."),
]


class ErrorDetail(BaseModel):
    detail: str


_ERROR_MEANINGS = {
    400: "Malformed request: a missing or empty file, bad query values (offset, limit, "
    "min_confidence), bad labels, or a body that cannot be parsed.",
    401: "API_TOKEN is set and the request has neither the Bearer token nor the login cookie.",
    403: "A state-changing request with the login cookie that is not shown to come from this "
    "site, or one whose Origin or Sec-Fetch-Site says it comes from another site (CSRF): "
    "send X-CSRF-Token, or use the Bearer token.",
    404: "No such image (or no preview or correction of it).",
    409: "The image is not classified (pending or failed), so it cannot be corrected yet.",
    413: "The upload is over MAX_UPLOAD_MB, (for /classify) the image has more pixels "
    f"than CLASSIFY_MAX_PIXELS, or another body is over {SMALL_BODY_BYTES // 1024} KB.",
    415: "The file is not a JPEG, PNG, WebP, GIF, BMP or TIFF (checked from its bytes).",
    416: "The Range asked for lies outside the body.",
    422: "The image cannot be decoded.",
    503: "The server is busy (/classify: all CLASSIFY_CONCURRENCY slots in use), or (uploads) "
    "cannot store the image now: its disk is read-only or failing. Nothing was kept; see "
    "Retry-After.",
    507: "The image was not stored: the server's disk is full. Nothing was kept; send it "
    "again later (see Retry-After).",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error codes an endpoint can answer."""
    return {code: {"model": ErrorDetail, "description": _ERROR_MEANINGS[code]} for code in codes}


class UploadAccepted(BaseModel):
    image_id: str
    image_name: str
    status_url: str


class ClassifyAnswer(BaseModel):
    classifications: list[Label]
    model_id: str
    latency_ms: float


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


def _page(request: Request, template: str, *, status_code: int = 200, **context: Any) -> Response:
    context["auth_required"] = get_settings().api_token is not None
    context["csrf_token"] = csrf_token(get_settings().api_token)
    return _templates.TemplateResponse(
        request, template, context, status_code=status_code, headers=_PAGE_HEADERS
    )


def _count_rejected(path: str) -> None:
    if path == UPLOAD_PATH:
        UPLOADS.labels("too_large").inc()


service = Service(service_id="image-classification", title="Image classification", version="1.0")
service.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
service.docs_headers = _PAGE_HEADERS  # /docs (offline Swagger UI) under the pages' CSP
# Outermost last: nosniff on every answer; then who may post (before any body is read);
# then how much of a body each route reads.
_uploads = upload_limit(get_settings().max_upload_bytes)
service.add_middleware(
    BodySizeLimitMiddleware,
    limits={UPLOAD_PATH: _uploads, CLASSIFY_PATH: _uploads},
    on_reject=_count_rejected,
)
service.add_middleware(WriteGuardMiddleware, open_paths=frozenset({LOGIN_PATH}))
service.add_middleware(NoSniffMiddleware)
_classify_slots = ClassifySlots(get_settings().classify_concurrency)
_login_throttle = LoginThrottle()


@service.exception_handler(RequestValidationError)
async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    # The contract answers malformed requests with 400 and a sentence, not FastAPI's 422 list.
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"][1:]) or str(error["loc"][0])
        problems.append(f"{where}: {error['msg']}")
    return JSONResponse({"detail": "; ".join(problems)}, status_code=400)


# python-multipart refuses a part header line over ~4 KB; Starlette says only "Invalid
# multipart data.", which leaves someone with a long file name guessing.
_BAD_MULTIPART = (
    "Invalid multipart data: the body is not well-formed multipart/form-data, or a part "
    "header is longer than 4 KB (a file name of about 4,000 characters or more). File names "
    "are kept up to 255 characters; rename the file and upload it again."
)


@service.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 400 and exc.detail == "Invalid multipart data.":
        exc = StarletteHTTPException(400, _BAD_MULTIPART, exc.headers)
    return await http_exception_handler(request, exc)


@service.exception_handler(InvalidQueryError)
async def _bad_paging(request: Request, exc: InvalidQueryError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=400)


def _checked_image(
    image_file: UploadFile | None, settings: Settings
) -> tuple[UploadFile, ImageType]:
    """The uploaded file and its image type, or the HTTP error the contract gives for it."""
    if image_file is None:
        raise HTTPException(400, "No file: send the image as the multipart field 'image_file'.")
    if not image_file.size:
        raise HTTPException(400, "The file is empty.")
    if image_file.size > settings.max_upload_bytes:
        raise HTTPException(413, too_large_message(settings.max_upload_bytes))
    image_type = sniff_image_type(image_file.file.read(SNIFF_BYTES))
    image_file.file.seek(0)
    if image_type is None:
        raise HTTPException(
            415,
            "The file is not an image we accept: JPEG, PNG, WebP, GIF, BMP or TIFF "
            "(checked from its content, not its name or content type).",
        )
    return image_file, image_type


@service.endpoint("/", response_class=HTMLResponse, include_in_schema=False)
def upload_page(request: Request, settings: SettingsDep) -> Response:
    return _page(
        request,
        "index.html",
        title="Upload images",
        max_upload_mb=settings.max_upload_mb,
        top_k=settings.top_k,
        accepted_types=ACCEPTED_MIME_TYPES,
    )


@service.endpoint(
    UPLOAD_PATH,
    method="POST",
    status_code=202,
    response_model=UploadAccepted,
    responses=error_responses(400, 401, 403, 413, 415, 503, 507),
    summary="Store an image; it is classified in the background",
)
def upload_image(
    auth: Authorized,
    objects_dep: ObjectsDep,
    settings: SettingsDep,
    image_file: ImageFile = None,
) -> UploadAccepted:
    """Answers 202 once the image is stored and its event journaled; poll ``status_url``."""
    try:
        upload, image_type = _checked_image(image_file, settings)
        image_name = display_name(upload.filename)
        try:
            stored = store_upload(
                objects_dep.objects,
                file=upload.file,
                image_type=image_type,
                image_name=image_name,
                max_bytes=settings.max_upload_bytes,
            )
        except UploadTooLargeError as exc:
            raise HTTPException(413, too_large_message(settings.max_upload_bytes)) from exc
        except BucketUnavailableError as exc:
            raise _not_stored(exc) from exc
    except HTTPException as exc:
        UPLOADS.labels(_UPLOAD_OUTCOMES.get(exc.status_code, "bad_request")).inc()
        raise
    UPLOADS.labels("accepted").inc()
    image_id = image_id_for(stored.key, stored.version)
    return UploadAccepted(
        image_id=image_id,
        image_name=image_name,
        status_url=f"/api/images/{image_id}",
    )


def _not_stored(exc: BucketUnavailableError) -> HTTPException:
    """507 when the disk is full, else 503: both say why, and when to try again."""
    return HTTPException(
        507 if isinstance(exc, BucketFullError) else 503,
        f"The image was not stored: {exc}. Nothing was kept; send it again later.",
        headers={"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)},
    )


@service.endpoint(
    "/api/images/{image_id}",
    response_model=ImageStatus,
    responses=error_responses(400, 401, 404, 503),
    summary="Status of one uploaded image: pending, classified or failed",
)
def image_status(
    image_id: str,
    auth: Authorized,
    table_dep: ResultsTableDep,
    failures_dep: FailuresDep,
    objects_dep: ObjectsDep,
) -> ImageResult:
    try:
        return find_image(
            image_id,
            table=table_dep.table,
            failures=failures_dep.failures,
            objects=objects_dep.objects,
            model_id=current_model_id(get_settings()),
        )
    except (InvalidImageIdError, LookupError) as exc:
        raise HTTPException(404, "No image with this id.") from exc


@functools.cache
def _model_id_of(model: str, engine: str, weights_path: Path | None, mtime: float) -> str:
    from image_classification.model.loader import model_id_for

    return model_id_for(model, engine, weights_path=weights_path)


def current_model_id(settings: Settings) -> str:
    """The model_id of the model the consumers run now (MODEL/ENGINE), without loading it."""
    mtime = Path(settings.model).stat().st_mtime if settings.model.endswith(CUSTOM) else 0.0
    return _model_id_of(settings.model, settings.engine, settings.weights_path, mtime)


CUSTOM = (".onnx", ".tflite", ".keras", ".h5")


def _results_filter(
    label: str | None,
    min_confidence: str | None,
    limit: int,
    offset: int,
    q: str | None = None,
    model_id: str | None = None,
) -> ResultsFilter:
    """The filter from query values; empty values mean "no filter" (plain HTML forms send them)."""
    minimum = None
    if min_confidence:
        try:
            minimum = float(min_confidence)
        except ValueError:
            minimum = -1.0
        if not 0.0 <= minimum <= 1.0:
            raise HTTPException(400, "min_confidence must be a number between 0 and 1.")
    label = (label.strip() or None) if label else None
    q = (q.strip() or None) if q else None
    if label is not None and q is not None:
        raise HTTPException(400, "Give label (exact) or q (part of a label), not both.")
    current = current_model_id(get_settings())
    chosen = (model_id.strip() or None) if model_id else None
    if chosen == "all":
        chosen = None
    return ResultsFilter(
        label=label,
        min_confidence=minimum,
        limit=limit,
        offset=offset,
        q=q,
        model_id=chosen if model_id else current,
        current_model=chosen in (None, current),
    )


LabelQuery = Annotated[
    str | None, Query(description="Rows having this label in their top-k (any case).")
]
SearchQuery = Annotated[
    str | None,
    Query(description="Rows having a label that contains this text (any case), e.g. 'cat'."),
]
MinConfidenceQuery = Annotated[
    str | None, Query(description="Rows with a label (the given one, if any) at least this sure.")
]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
# Bounded so that no value reaches a warehouse as an out-of-range OFFSET (400, not 500).
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_SELECT_OFFSET)]
ModelQuery = Annotated[
    str | None,
    Query(
        description="Rows of this model_id (default: the current model's; 'all': every model's)."
    ),
]


@service.endpoint(
    "/api/results",
    response_model=ResultsPage,
    responses=error_responses(400, 401, 503),
    summary="Results, newest first, with filters",
)
def results_api(
    auth: Authorized,
    table_dep: ResultsTableDep,
    failures_dep: FailuresDep,
    label: LabelQuery = None,
    q: SearchQuery = None,
    min_confidence: MinConfidenceQuery = None,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
    model_id: ModelQuery = None,
) -> ResultsPage:
    wanted = _results_filter(label, min_confidence, limit, offset, q, model_id)
    rows, total = list_results(wanted, table=table_dep.table, failures=failures_dep.failures)
    return ResultsPage(rows=rows, total=total)


def _results_url(
    wanted: ResultsFilter, offset: int, *, path: str = RESULTS_PAGE_PATH, paged: bool = True
) -> str:
    query = {
        "label": wanted.label,
        "q": wanted.q,
        "min_confidence": wanted.min_confidence,
        "model_id": None if wanted.current_model and wanted.model_id else wanted.model_id or "all",
    }
    values: dict[str, Any] = {name: value for name, value in query.items() if value is not None}
    if paged:
        values.update(limit=wanted.limit, offset=offset)
    return f"{path}?{urllib.parse.urlencode(values)}".rstrip("?")


@service.endpoint(
    RESULTS_CSV_PATH,
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
    summary="Every result matching the filters as CSV (streamed), newest first",
)
def results_csv(
    auth: Authorized,
    table_dep: ResultsTableDep,
    label: LabelQuery = None,
    q: SearchQuery = None,
    min_confidence: MinConfidenceQuery = None,
) -> StreamingResponse:
    wanted = _results_filter(label, min_confidence, 1, 0, q)
    disposition = f'attachment; filename="{csv_file_name(wanted)}"'
    return StreamingResponse(
        stream_csv(wanted, table_dep.table),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": disposition, "X-Content-Type-Options": "nosniff"},
    )


@service.endpoint(RESULTS_PAGE_PATH, response_class=HTMLResponse, include_in_schema=False)
def results_page(
    request: Request,
    settings: SettingsDep,
    table_dep: ResultsTableDep,
    failures_dep: FailuresDep,
    label: LabelQuery = None,
    q: SearchQuery = None,
    min_confidence: MinConfidenceQuery = None,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
    model_id: ModelQuery = None,
) -> Response:
    if not is_authorized(request, settings.api_token):
        here = urllib.parse.quote(f"{request.url.path}?{request.url.query}".rstrip("?"))
        return RedirectResponse(f"/login?next={here}", status_code=303)
    wanted = _results_filter(label, min_confidence, limit, offset, q, model_id)
    rows, total = list_results(wanted, table=table_dep.table, failures=failures_dep.failures)
    newer = _results_url(wanted, max(0, offset - limit)) if offset > 0 else None
    older = _results_url(wanted, offset + limit) if offset + limit < total else None
    return _page(
        request,
        "results.html",
        title="Results",
        rows=rows,
        total=total,
        label=wanted.label or "",
        q=wanted.q or "",
        csv_url=_results_url(wanted, 0, path=RESULTS_CSV_PATH, paged=False),
        min_confidence=wanted.min_confidence,
        limit=limit,
        offset=offset,
        prev_url=newer,
        next_url=older,
        models=models_in_table(table_dep.table),
        current_model_id=current_model_id(settings),
        model_id=wanted.model_id or "all",
        **_corrections_context(request, rows),
    )


@service.endpoint("/stats", response_class=HTMLResponse, include_in_schema=False)
def stats_page(
    request: Request,
    settings: SettingsDep,
    table_dep: ResultsTableDep,
    failures_dep: FailuresDep,
) -> Response:
    if not is_authorized(request, settings.api_token):
        return RedirectResponse("/login?next=/stats", status_code=303)
    failures = failures_dep.failures
    errors = [failure.error for failure in failures.list(limit=MAX_FAILED_LISTED, offset=0)]
    stats = compute_stats(table_dep.table, errors, failed_total=failures.count())
    return _page(request, "stats.html", title="Stats", stats=stats)


def _corrections_context(request: Request, rows: list[ImageResult]) -> dict[str, Any]:
    from image_classification.processors import corrections

    shown = [row.image_id for row in rows if row.status == "classified"]
    return {
        "corrections": corrections.latest(shown),
        "corrections_url": f"{RESULTS_PAGE_PATH}/corrections",
        "here": f"{request.url.path}?{request.url.query}".rstrip("?"),
    }


@service.endpoint(
    "/images/{image_id}/thumbnail",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}},
        206: {"content": {"image/jpeg": {}}, "description": "The bytes a Range asked for."},
        **error_responses(400, 401, 404, 416, 503),
    },
    summary="A small JPEG preview of a stored image (HEAD and single byte Range work too)",
)
def thumbnail(
    request: Request,
    image_id: str,
    auth: Authorized,
    objects_dep: ObjectsDep,
    settings: SettingsDep,
) -> Response:
    try:
        key, version = parse_image_id(image_id)
    except InvalidImageIdError as exc:
        raise HTTPException(404, "No image with this id.") from exc
    stored = objects_dep.objects.stat(key)
    # Files copied into the bucket may be any size; previews are made of upload-sized ones.
    if stored is None or stored.size > settings.max_upload_bytes:
        raise HTTPException(404, "No preview for this image.")
    # Decoded in the run process: the same slots and pixel budget as /classify, but a
    # results page asks for many previews at once, so they wait a little for a slot.
    with _classify_slots.take(wait=THUMBNAIL_SLOT_WAIT_SECONDS):
        try:
            data = objects_dep.objects.get(key, version=version)
            check_pixel_budget(
                data, min_size=THUMBNAIL_PIXELS, max_pixels=settings.classify_max_pixels
            )
            preview = make_thumbnail(data)
        except (ObjectNotFoundError, InvalidImageError) as exc:
            raise HTTPException(404, "No preview for this image.") from exc
        except HTTPException as exc:
            if exc.status_code != 413:
                raise
            raise HTTPException(404, "No preview for this image (too many pixels).") from exc
    return _ranged(request, preview)


def _ranged(request: Request, body: bytes) -> Response:
    headers = {**_IMAGE_HEADERS, "Accept-Ranges": "bytes"}
    wanted = byte_range(request.headers.get("range"), len(body))
    if wanted is False:
        headers["Content-Range"] = f"bytes */{len(body)}"
        return Response(status_code=416, headers=headers)
    if wanted is None or wanted is True:
        return Response(body, media_type="image/jpeg", headers=headers)
    first, last = wanted
    headers["Content-Range"] = f"bytes {first}-{last}/{len(body)}"
    return Response(body[first : last + 1], 206, media_type="image/jpeg", headers=headers)


# HEAD: the same answer without its body (Uvicorn drops the body of a HEAD response).
service.endpoint("/images/{image_id}/thumbnail", method="HEAD", include_in_schema=False)(thumbnail)


@service.endpoint(
    CLASSIFY_PATH,
    method="POST",
    response_model=ClassifyAnswer,
    responses=error_responses(400, 401, 403, 413, 415, 422, 503),
    summary="Classify an image now, without storing it",
)
def classify(
    auth: Authorized,
    model: ModelDep,
    settings: SettingsDep,
    image_file: ImageFile = None,
) -> ClassifyAnswer:
    upload, _ = _checked_image(image_file, settings)
    # Bounded: this decodes in the process that owns the journal and the warehouse writer.
    with _classify_slots.take():
        data = upload.file.read()
        check_pixel_budget(
            data,
            min_size=model.classifier.preprocess.resize,
            max_pixels=settings.classify_max_pixels,
        )
        started = time.perf_counter()
        try:
            result = model.classify(data)
        except InvalidImageError as exc:
            raise HTTPException(422, str(exc)) from exc
        seconds = time.perf_counter() - started
        del data
    CLASSIFY_REQUEST_SECONDS.observe(seconds)
    return ClassifyAnswer(
        classifications=[
            Label(label=c.label, confidence=c.confidence) for c in result.classifications
        ],
        model_id=model.classifier.model_id,
        latency_ms=round(seconds * 1000, 2),
    )


NextQuery = Annotated[str | None, Query(alias="next")]


@service.endpoint(LOGIN_PATH, response_class=HTMLResponse, include_in_schema=False)
def login_page(request: Request, settings: SettingsDep, next_path: NextQuery = None) -> Response:
    target = safe_next(next_path)
    if settings.api_token is None:
        return RedirectResponse(target, status_code=303)
    return _page(request, "login.html", title="Log in", next=target, error=None)


@service.endpoint(LOGIN_PATH, method="POST", response_class=HTMLResponse, include_in_schema=False)
def login(
    request: Request,
    settings: SettingsDep,
    token: Annotated[str, Form()] = "",
    form_next: Annotated[str | None, Form(alias="next")] = None,
    next_path: NextQuery = None,
) -> Response:
    target = safe_next(form_next or next_path)
    if settings.api_token is None:
        return RedirectResponse(target, status_code=303)
    client = request.client.host if request.client else "unknown"
    wait = _login_throttle.retry_after(client)
    if wait is not None:
        return _too_many_logins(request, target, wait)
    if not token_matches(token, settings.api_token):
        _login_throttle.failed(client)
        return _page(
            request,
            "login.html",
            status_code=401,
            title="Log in",
            next=target,
            error="Wrong token.",
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


def _too_many_logins(request: Request, target: str, wait: int) -> Response:
    response = _page(
        request,
        "login.html",
        status_code=429,
        title="Log in",
        next=target,
        error=f"Too many wrong tokens from your address: try again in {wait} s.",
    )
    response.headers["Retry-After"] = str(wait)
    return response
