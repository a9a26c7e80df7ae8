"""Errors as the HTTP contract gives them: JSON ``{"detail": "..."}``, one sentence each.

``error_responses`` documents an endpoint's error codes in OpenAPI; ``EXCEPTION_HANDLERS``
turn FastAPI's and tideflow's errors into that shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from image_classification.processors.limits import SMALL_BODY_BYTES
from tideflow.exceptions import InvalidQueryError
from tideflow.requests import Request
from tideflow.responses import JSONResponse, Response


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


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 400 and exc.detail == "Invalid multipart data.":
        exc = StarletteHTTPException(400, _BAD_MULTIPART, exc.headers)
    return await http_exception_handler(request, exc)


async def _bad_paging(request: Request, exc: InvalidQueryError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=400)


EXCEPTION_HANDLERS: dict[type[Exception], Callable[..., Any]] = {
    RequestValidationError: _bad_request,
    StarletteHTTPException: _http_error,
    InvalidQueryError: _bad_paging,
}
