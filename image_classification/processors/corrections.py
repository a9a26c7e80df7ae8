"""Corrections: a person marks an image's labels wrong and gives the right ones.

They are kept in their own table beside the results (``image_classification_corrections``),
append-only (the newest correction of an image wins), shown on the results page beside the
model's labels, and become training data: ``python -m image_classification.train
--from-corrections`` reads them and the images from the bucket.

With ``API_TOKEN`` set only authenticated callers (bearer token or the page's login) may
correct. Endpoints: ``POST /api/images/{image_id}/corrections`` (JSON ``{"labels": [...]}``,
an empty list meaning "none of the model's labels apply"), ``GET`` the same path for the
latest one, and the results page's form (``POST /image-upload-results/corrections``).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import unicodedata
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import HTTPException
from pydantic import AfterValidator, BaseModel, Field

from image_classification.dependencies import (
    FailuresDep,
    ObjectsDep,
    ResultsTableDep,
)
from image_classification.image_ids import InvalidImageIdError, parse_image_id
from image_classification.primitives import table
from image_classification.processors.auth import Authorized, safe_next
from image_classification.processors.service import RESULTS_PAGE_PATH, error_responses, service
from tideflow.io.primitive import SinkPrimitive
from tideflow.requests import Form
from tideflow.responses import RedirectResponse, Response

MAX_LABELS = 20
MAX_LABEL_LENGTH = 100
CORRECTIONS_TABLE = f"{table.table_name}_corrections"


@dataclasses.dataclass(frozen=True)
class CorrectionRow:
    """What a person said an image shows (``labels``), and what the model had said."""

    image_id: str
    image_name: str
    labels: list[str]
    model_id: str
    model_labels: list[str]
    corrected_at: datetime.datetime
    user: str


corrections_table: SinkPrimitive = table.sibling(CORRECTIONS_TABLE, schema=CorrectionRow)


def _forbidden(ch: str) -> bool:
    """'|' (it separates labels on the page and in training CSVs), control characters,
    lone surrogates (not Unicode), and the format characters of the Basic Multilingual Plane
    that make text read other than it is (bidi overrides such as U+202E, zero-width spaces).
    The joiners U+200C/U+200D stay (Persian words, emoji sequences need them), as do the
    astral format characters (emoji tag sequences)."""
    category = unicodedata.category(ch)
    if category == "Cf":
        return ord(ch) <= 0xFFFF and ch not in "\u200c\u200d"
    return ch == "|" or category in ("Cc", "Cs")


def label_problem(label: str) -> str | None:
    """Why ``label`` cannot be stored, or None."""
    if len(label) > MAX_LABEL_LENGTH:
        return f"a label has at most {MAX_LABEL_LENGTH} characters: {label[:40]!r}"
    bad = next((ch for ch in label if _forbidden(ch)), None)
    if bad is not None:
        return (
            f"a label cannot hold {bad!r} (U+{ord(bad):04X}): no '|', control or invisible "
            f"formatting characters: {label[:40]!r}"
        )
    return None


@functools.cache
def label_pattern() -> str:
    """``_forbidden`` as the JSON schema's ``pattern`` (lone surrogates aside: a JSON
    schema string is Unicode text already)."""
    ranges: list[tuple[int, int]] = []
    for code in range(0x10000):
        if 0xD800 <= code <= 0xDFFF or not _forbidden(chr(code)):
            continue
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    spans = "".join(
        f"\\u{first:04x}" if first == last else f"\\u{first:04x}-\\u{last:04x}"
        for first, last in ranges
    )
    return f"^[^{spans}]*$"


def _valid_label(label: str) -> str:
    problem = label_problem(label)
    if problem is not None:
        raise ValueError(problem)
    return label


CorrectionLabel = Annotated[
    str,
    Field(
        max_length=MAX_LABEL_LENGTH,
        json_schema_extra=lambda schema: schema.update(pattern=label_pattern()),
    ),
    AfterValidator(_valid_label),
]


class CorrectionIn(BaseModel):
    labels: list[CorrectionLabel] = Field(
        max_length=MAX_LABELS,
        description="The right labels (whitespace is collapsed, duplicates dropped); an "
        "empty list: none of the model's labels apply.",
    )


class CorrectionOut(BaseModel):
    image_id: str
    labels: list[str]
    model_id: str
    model_labels: list[str]
    corrected_at: datetime.datetime


def clean_labels(raw: Sequence[str]) -> list[str]:
    """Stripped, de-duplicated labels; ``ValueError`` with a message for a bad one."""
    labels: list[str] = []
    for item in raw:
        label = " ".join(str(item).split())
        if not label:
            continue
        problem = label_problem(label)
        if problem is not None:
            raise ValueError(problem)
        if label not in labels:
            labels.append(label)
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels per image")
    return labels


def split_labels(text: str) -> list[str]:
    """The page's text field: labels separated by commas."""
    return text.split(",")


def record(
    image: Any, labels: list[str], *, user: str, table: SinkPrimitive | None = None
) -> CorrectionRow:
    """Store a correction for ``image`` (a classified ``ImageResult``)."""
    now = datetime.datetime.now(datetime.UTC)
    row = CorrectionRow(
        image_id=image.image_id,
        image_name=image.image_name,
        labels=labels,
        model_id=image.model_id or "",
        model_labels=[c.label for c in image.classifications],
        corrected_at=now,
        user=user,
    )
    target = table or corrections_table
    target.sink().write([(f"{row.image_id}@{now.isoformat()}", row)])
    return row


def latest(
    image_ids: Sequence[str], *, table: SinkPrimitive | None = None
) -> dict[str, CorrectionRow]:
    """The newest correction of each of ``image_ids`` that has one."""
    if not image_ids:
        return {}
    names = ", ".join(f"$id{i}" for i in range(len(image_ids)))
    params = {f"id{i}": image_id for i, image_id in enumerate(image_ids)}
    return {row.image_id: row for row in _newest(f"image_id IN ({names})", params, table=table)}


def all_latest(*, table: SinkPrimitive | None = None) -> list[CorrectionRow]:
    """The newest correction of every corrected image."""
    return _newest("TRUE", {}, table=table)


def newest_sql(condition: str = "TRUE", *, table_ref: str = "{table}") -> str:
    """The newest correction per image, newest first (``table_ref``: the table's name)."""
    columns = ", ".join(f.name for f in dataclasses.fields(CorrectionRow))
    return (
        f"SELECT {columns} FROM (SELECT {columns}, ROW_NUMBER() OVER (PARTITION BY image_id "
        f"ORDER BY corrected_at DESC) AS _newest FROM {table_ref} WHERE {condition}) AS latest "
        "WHERE _newest = 1 ORDER BY corrected_at DESC"
    )


def _newest(
    condition: str, params: dict[str, str], *, table: SinkPrimitive | None
) -> list[CorrectionRow]:
    result = (table or corrections_table).reader().query(newest_sql(condition), params)
    return [CorrectionRow(*row) for row in result.rows]


def as_out(row: CorrectionRow) -> CorrectionOut:
    return CorrectionOut(
        image_id=row.image_id,
        labels=list(row.labels),
        model_id=row.model_id,
        model_labels=list(row.model_labels),
        corrected_at=row.corrected_at,
    )


def _classified_image(image_id: str, table_dep: Any, failures_dep: Any, objects_dep: Any) -> Any:
    from image_classification.processors.results import find_image

    try:
        parse_image_id(image_id)
        image = find_image(
            image_id,
            table=table_dep.table,
            failures=failures_dep.failures,
            objects=objects_dep.objects,
        )
    except (InvalidImageIdError, LookupError) as exc:
        raise HTTPException(404, "No image with this id.") from exc
    if image.status != "classified":
        raise HTTPException(
            409, f"The image is {image.status}; only classified images can be corrected."
        )
    return image


@service.endpoint(
    "/api/images/{image_id}/corrections",
    method="POST",
    response_model=CorrectionOut,
    responses=error_responses(400, 401, 403, 404, 409, 413),
    summary="Correct an image's labels (an empty list: none of the model's labels apply)",
)
def correct(
    image_id: str,
    body: CorrectionIn,
    auth: Authorized,
    table_dep: ResultsTableDep,
    failures_dep: FailuresDep,
    objects_dep: ObjectsDep,
) -> CorrectionOut:
    image = _classified_image(image_id, table_dep, failures_dep, objects_dep)
    try:
        labels = clean_labels(body.labels)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    return as_out(record(image, labels, user="api"))


@service.endpoint(
    "/api/images/{image_id}/corrections",
    response_model=CorrectionOut,
    responses=error_responses(401, 404),
    summary="The latest correction of an image",
)
def get_correction(image_id: str, auth: Authorized) -> CorrectionOut:
    found = latest([image_id]).get(image_id)
    if found is None:
        raise HTTPException(404, "This image has no correction.")
    return as_out(found)


@service.endpoint(f"{RESULTS_PAGE_PATH}/corrections", method="POST", include_in_schema=False)
def correct_from_page(
    auth: Authorized,
    table_dep: ResultsTableDep,
    failures_dep: FailuresDep,
    objects_dep: ObjectsDep,
    image_id: Annotated[str, Form()],
    labels: Annotated[str, Form()] = "",
    form_next: Annotated[str | None, Form(alias="next")] = None,
) -> Response:
    """The results page's form (works without JavaScript): store, then back to the page.
    Like every POST it passes the CSRF check of ``processors/csrf.py`` first."""
    image = _classified_image(image_id, table_dep, failures_dep, objects_dep)
    try:
        cleaned = clean_labels(split_labels(labels))
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    record(image, cleaned, user="page")
    target = safe_next(form_next) if form_next else RESULTS_PAGE_PATH
    return RedirectResponse(target, status_code=303)
