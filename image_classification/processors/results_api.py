"""The results as JSON and CSV: one image's status, the filtered list, the CSV download.

The results page (``processors/pages.py``) takes the same query values: ``ResultsQuery``
reads them, ``results_url`` writes them back into a link.
"""

from __future__ import annotations

import functools
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException

from image_classification.dependencies import Failures, Objects, ResultsTable, SettingsDep
from image_classification.image_ids import InvalidImageIdError
from image_classification.processors.auth import Authorized
from image_classification.processors.errors import error_responses
from image_classification.processors.export import csv_file_name, stream_csv
from image_classification.processors.results import (
    ImageResult,
    ImageStatus,
    ResultsFilter,
    ResultsPage,
    StatusCache,
    find_image,
    list_results,
)
from image_classification.settings import Settings
from tideflow import Router, Scope, dependency
from tideflow.io.strategies import MAX_SELECT_OFFSET
from tideflow.requests import Query
from tideflow.responses import StreamingResponse

RESULTS_PAGE_PATH = "/image-upload-results"
RESULTS_CSV_PATH = "/api/results.csv"
MAX_PAGE_SIZE = 200
CUSTOM = (".onnx", ".tflite", ".keras", ".h5")

router = Router()


@functools.cache
def _model_id_of(model: str, engine: str, weights_path: Path | None, mtime: float) -> str:
    from image_classification.model.loader import model_id_for

    return model_id_for(model, engine, weights_path=weights_path)


def current_model_id(settings: Settings) -> str:
    """The model_id of the model the consumers run now (MODEL/ENGINE), without loading it."""
    mtime = Path(settings.model).stat().st_mtime if settings.model.endswith(CUSTOM) else 0.0
    return _model_id_of(settings.model, settings.engine, settings.weights_path, mtime)


@dependency(scope=Scope.NO_SCOPE)
def current_model(settings: SettingsDep) -> str:
    """``current_model_id``, asked again at each call: a custom model file may change."""
    return current_model_id(settings)


CurrentModel = Annotated[str, current_model]
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


class ResultsQuery:
    """The filters and page a results request asks for, as FastAPI reads them from the
    query string; empty values mean "no filter" (plain HTML forms send them)."""

    def __init__(
        self,
        label: LabelQuery = None,
        q: SearchQuery = None,
        min_confidence: MinConfidenceQuery = None,
        limit: LimitQuery = 50,
        offset: OffsetQuery = 0,
        model_id: ModelQuery = None,
    ) -> None:
        self.label = (label.strip() or None) if label else None
        self.q = (q.strip() or None) if q else None
        self.min_confidence = min_confidence
        self.limit = limit
        self.offset = offset
        self.model_id = model_id

    def filter(self, current: str) -> ResultsFilter:
        """The checked filter (400 for bad values); ``current``, the current model's id, is
        the default ``model_id``."""
        minimum = None
        if self.min_confidence:
            try:
                minimum = float(self.min_confidence)
            except ValueError:
                minimum = -1.0
            if not 0.0 <= minimum <= 1.0:
                raise HTTPException(400, "min_confidence must be a number between 0 and 1.")
        if self.label is not None and self.q is not None:
            raise HTTPException(400, "Give label (exact) or q (part of a label), not both.")
        chosen = (self.model_id.strip() or None) if self.model_id else None
        if chosen == "all":
            chosen = None
        return ResultsFilter(
            label=self.label,
            min_confidence=minimum,
            limit=self.limit,
            offset=self.offset,
            q=self.q,
            model_id=chosen if self.model_id else current,
            current_model=chosen in (None, current),
        )


ResultsQueryDep = Annotated[ResultsQuery, Depends()]


def results_url(
    wanted: ResultsFilter, offset: int, *, path: str = RESULTS_PAGE_PATH, paged: bool = True
) -> str:
    """The link to ``path`` with ``wanted``'s filters (and, when ``paged``, this page)."""
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


@router.endpoint(
    "/api/images/{image_id}",
    response_model=ImageStatus,
    responses=error_responses(400, 401, 404, 503),
    summary="Status of one uploaded image: pending, classified or failed",
)
def image_status(
    image_id: str,
    auth: Authorized,
    table: ResultsTable,
    failures: Failures,
    objects: Objects,
    current: CurrentModel,
    cache: StatusCache,
) -> ImageResult:
    try:
        return find_image(
            image_id,
            table=table,
            failures=failures,
            objects=objects,
            model_id=current,
            cache=cache,
        )
    except (InvalidImageIdError, LookupError) as exc:
        raise HTTPException(404, "No image with this id.") from exc


@router.endpoint(
    "/api/results",
    response_model=ResultsPage,
    responses=error_responses(400, 401, 503),
    summary="Results, newest first, with filters",
)
def results_api(
    auth: Authorized,
    table: ResultsTable,
    failures: Failures,
    current: CurrentModel,
    query: ResultsQueryDep,
) -> ResultsPage:
    rows, total = list_results(query.filter(current), table=table, failures=failures)
    return ResultsPage(rows=rows, total=total)


@router.endpoint(
    RESULTS_CSV_PATH,
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
    summary="Every result matching the filters as CSV (streamed), newest first",
)
def results_csv(
    auth: Authorized,
    table: ResultsTable,
    current: CurrentModel,
    label: LabelQuery = None,
    q: SearchQuery = None,
    min_confidence: MinConfidenceQuery = None,
) -> StreamingResponse:
    wanted = ResultsQuery(label=label, q=q, min_confidence=min_confidence, limit=1).filter(current)
    disposition = f'attachment; filename="{csv_file_name(wanted)}"'
    return StreamingResponse(
        stream_csv(wanted, table),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": disposition, "X-Content-Type-Options": "nosniff"},
    )
