"""Corrections: a person marks an image's labels wrong and gives the right ones.

They are kept in their own table beside the results (``image_classification_corrections``),
append-only (the newest correction of an image wins), shown on the results page beside the
model's labels, and become training data: ``python -m image_classification.train
--from-corrections`` reads them and the images from the bucket.

With ``API_TOKEN`` set only authenticated callers (bearer token or the page's login) may
correct. Endpoints: ``POST /api/images/{image_id}/corrections`` (JSON ``{"labels": [...]}``,
an empty list meaning "none of the model's labels apply"), ``GET`` the same path for the
latest one, and the results page's form (``POST /image-upload-results/corrections``, in
``processors/pages.py``).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import unicodedata
from collections.abc import Sequence
from typing import Annotated

from fastapi import HTTPException
from pydantic import AfterValidator, BaseModel, Field

from image_classification.dependencies import Failures, Objects, PrimitivesDep, ResultsTable
from image_classification.image_ids import InvalidImageIdError, parse_image_id
from image_classification.processors.auth import Authorized
from image_classification.processors.errors import error_responses
from image_classification.processors.results import ImageResult, find_image
from image_classification.schemas import CorrectionRow
from tideflow import Router, Scope, dependency
from tideflow.io.primitive import SinkPrimitive

MAX_LABELS = 20
MAX_LABEL_LENGTH = 100

router = Router()


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


def newest_sql(condition: str = "TRUE", *, table_ref: str = "{table}") -> str:
    """The newest correction per image, newest first (``table_ref``: the table's name)."""
    columns = ", ".join(f.name for f in dataclasses.fields(CorrectionRow))
    return (
        f"SELECT {columns} FROM (SELECT {columns}, ROW_NUMBER() OVER (PARTITION BY image_id "
        f"ORDER BY corrected_at DESC) AS _newest FROM {table_ref} WHERE {condition}) AS latest "
        "WHERE _newest = 1 ORDER BY corrected_at DESC"
    )


class Corrections:
    """The corrections table: append-only, the newest correction of an image wins."""

    def __init__(self, table: SinkPrimitive) -> None:
        self.table = table

    def record(self, image: ImageResult, labels: list[str], *, user: str) -> CorrectionRow:
        """Store a correction for ``image`` (a classified one)."""
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
        self.table.sink().write([(f"{row.image_id}@{now.isoformat()}", row)])
        return row

    def latest(self, image_ids: Sequence[str]) -> dict[str, CorrectionRow]:
        """The newest correction of each of ``image_ids`` that has one."""
        if not image_ids:
            return {}
        names = ", ".join(f"$id{i}" for i in range(len(image_ids)))
        params = {f"id{i}": image_id for i, image_id in enumerate(image_ids)}
        return {row.image_id: row for row in self._newest(f"image_id IN ({names})", params)}

    def _newest(self, condition: str, params: dict[str, str]) -> list[CorrectionRow]:
        result = self.table.reader().query(newest_sql(condition), params)
        return [CorrectionRow(*row) for row in result.rows]


@dependency(scope=Scope.REPLICA)
def corrections_table(primitives: PrimitivesDep) -> Corrections:
    return Corrections(primitives.corrections)


CorrectionsTable = Annotated[Corrections, corrections_table]


def as_out(row: CorrectionRow) -> CorrectionOut:
    return CorrectionOut(
        image_id=row.image_id,
        labels=list(row.labels),
        model_id=row.model_id,
        model_labels=list(row.model_labels),
        corrected_at=row.corrected_at,
    )


def classified_image(
    image_id: str, *, table: ResultsTable, failures: Failures, objects: Objects
) -> ImageResult:
    """The image to correct: 404 when there is none, 409 unless it is classified."""
    try:
        parse_image_id(image_id)
        image = find_image(image_id, table=table, failures=failures, objects=objects)
    except (InvalidImageIdError, LookupError) as exc:
        raise HTTPException(404, "No image with this id.") from exc
    if image.status != "classified":
        raise HTTPException(
            409, f"The image is {image.status}; only classified images can be corrected."
        )
    return image


def checked_labels(raw: Sequence[str]) -> list[str]:
    """``clean_labels``, or 400 with what is wrong."""
    try:
        return clean_labels(raw)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc


@router.endpoint(
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
    table: ResultsTable,
    failures: Failures,
    objects: Objects,
    corrections: CorrectionsTable,
) -> CorrectionOut:
    image = classified_image(image_id, table=table, failures=failures, objects=objects)
    return as_out(corrections.record(image, checked_labels(body.labels), user="api"))


@router.endpoint(
    "/api/images/{image_id}/corrections",
    response_model=CorrectionOut,
    responses=error_responses(401, 404),
    summary="The latest correction of an image",
)
def get_correction(image_id: str, auth: Authorized, corrections: CorrectionsTable) -> CorrectionOut:
    found = corrections.latest([image_id]).get(image_id)
    if found is None:
        raise HTTPException(404, "This image has no correction.")
    return as_out(found)
