"""The HTTP service: upload page and API, status and results, thumbnails, /classify, login.

Errors are JSON ``{"detail": "..."}``. With ``API_TOKEN`` set, everything that stores or
shows images needs ``Authorization: Bearer <token>`` or the login cookie; the upload page,
``/login``, ``/static``, ``/healthz``, ``/metrics`` and ``/docs`` stay open.
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
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from image_classification.dependencies import (
    BucketDep,
    ImageStreamDep,
    ModelDep,
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
from image_classification.processors.limits import BodySizeLimitMiddleware, too_large_message
from image_classification.processors.metrics import CLASSIFY_REQUEST_SECONDS, UPLOADS
from image_classification.processors.results import (
    ImageResult,
    ImageStatus,
    Label,
    ResultsFilter,
    ResultsPage,
    find_image,
    list_results,
)
from image_classification.processors.thumbnails import make_thumbnail
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
from tideflow.exceptions import ObjectNotFoundError
from tideflow.requests import File, Form, Query, Request, UploadFile
from tideflow.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
UPLOAD_PATH = "/image-upload"
CLASSIFY_PATH = "/classify"
RESULTS_PAGE_PATH = "/image-upload-results"
MAX_PAGE_SIZE = 200

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
_UPLOAD_OUTCOMES = {400: "bad_request", 413: "too_large", 415: "not_an_image"}

ImageFile = Annotated[
    UploadFile | None,
    File(description="One image: JPEG, PNG, WebP, GIF, BMP or TIFF (checked from its bytes)."),
]


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
    return _templates.TemplateResponse(
        request, template, context, status_code=status_code, headers=_PAGE_HEADERS
    )


def _count_rejected(path: str) -> None:
    if path == UPLOAD_PATH:
        UPLOADS.labels("too_large").inc()


service = Service(service_id="image-classification", title="Image classification", version="1.0")
service.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
service.add_middleware(
    BodySizeLimitMiddleware,
    paths=frozenset({UPLOAD_PATH, CLASSIFY_PATH}),
    max_file_bytes=get_settings().max_upload_bytes,
    on_reject=_count_rejected,
)


@service.exception_handler(RequestValidationError)
async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    # The contract answers malformed requests with 400 and a sentence, not FastAPI's 422 list.
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"][1:]) or str(error["loc"][0])
        problems.append(f"{where}: {error['msg']}")
    return JSONResponse({"detail": "; ".join(problems)}, status_code=400)


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
    summary="Store an image; it is classified in the background",
)
def upload_image(
    auth: Authorized,
    bucket_dep: BucketDep,
    settings: SettingsDep,
    image_file: ImageFile = None,
) -> UploadAccepted:
    """Answers 202 once the image is stored and its event journaled; poll ``status_url``."""
    try:
        upload, image_type = _checked_image(image_file, settings)
        image_name = display_name(upload.filename)
        try:
            key, generation = store_upload(
                bucket_dep.bucket,
                file=upload.file,
                image_type=image_type,
                image_name=image_name,
                max_bytes=settings.max_upload_bytes,
            )
        except UploadTooLargeError as exc:
            raise HTTPException(413, too_large_message(settings.max_upload_bytes)) from exc
    except HTTPException as exc:
        UPLOADS.labels(_UPLOAD_OUTCOMES.get(exc.status_code, "bad_request")).inc()
        raise
    UPLOADS.labels("accepted").inc()
    image_id = image_id_for(key, generation)
    return UploadAccepted(
        image_id=image_id,
        image_name=image_name,
        status_url=f"/api/images/{image_id}",
    )


@service.endpoint(
    "/api/images/{image_id}",
    response_model=ImageStatus,
    summary="Status of one uploaded image: pending, classified or failed",
)
def image_status(
    image_id: str,
    auth: Authorized,
    table_dep: ResultsTableDep,
    stream_dep: ImageStreamDep,
    bucket_dep: BucketDep,
) -> ImageResult:
    try:
        return find_image(
            image_id, table=table_dep.table, source=stream_dep.source, bucket=bucket_dep.bucket
        )
    except (InvalidImageIdError, LookupError) as exc:
        raise HTTPException(404, "No image with this id.") from exc


def _results_filter(
    label: str | None, min_confidence: str | None, limit: int, offset: int
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
    return ResultsFilter(
        label=(label.strip() or None) if label else None,
        min_confidence=minimum,
        limit=limit,
        offset=offset,
    )


LabelQuery = Annotated[
    str | None, Query(description="Rows having this label in their top-k (any case).")
]
MinConfidenceQuery = Annotated[
    str | None, Query(description="Rows with a label (the given one, if any) at least this sure.")
]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
OffsetQuery = Annotated[int, Query(ge=0)]


@service.endpoint(
    "/api/results", response_model=ResultsPage, summary="Results, newest first, with filters"
)
def results_api(
    auth: Authorized,
    table_dep: ResultsTableDep,
    stream_dep: ImageStreamDep,
    label: LabelQuery = None,
    min_confidence: MinConfidenceQuery = None,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
) -> ResultsPage:
    wanted = _results_filter(label, min_confidence, limit, offset)
    rows, total = list_results(wanted, table=table_dep.table, source=stream_dep.source)
    return ResultsPage(rows=rows, total=total)


def _results_url(wanted: ResultsFilter, offset: int) -> str:
    query = {"label": wanted.label, "min_confidence": wanted.min_confidence}
    values = {name: value for name, value in query.items() if value is not None}
    values.update(limit=wanted.limit, offset=offset)
    return f"{RESULTS_PAGE_PATH}?{urllib.parse.urlencode(values)}"


@service.endpoint(RESULTS_PAGE_PATH, response_class=HTMLResponse, include_in_schema=False)
def results_page(
    request: Request,
    settings: SettingsDep,
    table_dep: ResultsTableDep,
    stream_dep: ImageStreamDep,
    label: LabelQuery = None,
    min_confidence: MinConfidenceQuery = None,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
) -> Response:
    if not is_authorized(request, settings.api_token):
        here = urllib.parse.quote(f"{request.url.path}?{request.url.query}".rstrip("?"))
        return RedirectResponse(f"/login?next={here}", status_code=303)
    wanted = _results_filter(label, min_confidence, limit, offset)
    rows, total = list_results(wanted, table=table_dep.table, source=stream_dep.source)
    newer = _results_url(wanted, max(0, offset - limit)) if offset > 0 else None
    older = _results_url(wanted, offset + limit) if offset + limit < total else None
    return _page(
        request,
        "results.html",
        title="Results",
        rows=rows,
        total=total,
        label=wanted.label or "",
        min_confidence=wanted.min_confidence,
        limit=limit,
        offset=offset,
        prev_url=newer,
        next_url=older,
    )


@service.endpoint(
    "/images/{image_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
    summary="A small JPEG preview of a stored image",
)
def thumbnail(
    image_id: str, auth: Authorized, bucket_dep: BucketDep, settings: SettingsDep
) -> Response:
    try:
        key, _ = parse_image_id(image_id)
    except InvalidImageIdError as exc:
        raise HTTPException(404, "No image with this id.") from exc
    blob = bucket_dep.bucket.get_blob(key)
    # Files copied into the bucket may be any size; previews are made of upload-sized ones.
    if blob is None or (blob.size or 0) > settings.max_upload_bytes:
        raise HTTPException(404, "No preview for this image.")
    try:
        preview = make_thumbnail(blob.download_as_bytes())
    except (ObjectNotFoundError, InvalidImageError) as exc:
        raise HTTPException(404, "No preview for this image.") from exc
    return Response(preview, media_type="image/jpeg", headers=_IMAGE_HEADERS)


@service.endpoint(
    CLASSIFY_PATH,
    method="POST",
    response_model=ClassifyAnswer,
    summary="Classify an image now, without storing it",
)
def classify(
    auth: Authorized,
    model: ModelDep,
    settings: SettingsDep,
    image_file: ImageFile = None,
) -> ClassifyAnswer:
    upload, _ = _checked_image(image_file, settings)
    data = upload.file.read()
    started = time.perf_counter()
    try:
        result = model.classifier.classify_with_info(data, top_k=model.top_k)
    except InvalidImageError as exc:
        raise HTTPException(422, str(exc)) from exc
    seconds = time.perf_counter() - started
    CLASSIFY_REQUEST_SECONDS.observe(seconds)
    return ClassifyAnswer(
        classifications=[
            Label(label=c.label, confidence=c.confidence) for c in result.classifications
        ],
        model_id=model.classifier.model_id,
        latency_ms=round(seconds * 1000, 2),
    )


NextQuery = Annotated[str | None, Query(alias="next")]


@service.endpoint("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(request: Request, settings: SettingsDep, next_path: NextQuery = None) -> Response:
    target = safe_next(next_path)
    if settings.api_token is None:
        return RedirectResponse(target, status_code=303)
    return _page(request, "login.html", title="Log in", next=target, error=None)


@service.endpoint("/login", method="POST", response_class=HTMLResponse, include_in_schema=False)
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
    if not token_matches(token, settings.api_token):
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
