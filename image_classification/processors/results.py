"""Reading results back: one image's status, and the newest-first list with filters.

An image is ``classified`` when the table has its row, ``failed`` when its event was
dead-lettered (the reason is the consumer's error, read from the table's failure log),
``pending`` when the object is stored but neither happened yet.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import os
import threading
from typing import Any, Literal

from pydantic import BaseModel

from image_classification.image_ids import image_id_for, parse_image_id
from image_classification.processors.uploads import IMAGE_NAME_METADATA, display_name
from tideflow import Scope, dependency
from tideflow.dependencies import TableQuery
from tideflow.io.failures import FailureLog
from tideflow.io.strategies import ItemFilter, ObjectStore
from tideflow.types import Failure

# Failed images are listed from the failure log, newest first, up to this many.
MAX_FAILED_LISTED = 1000
_EPOCH = datetime.datetime.fromtimestamp(0, tz=datetime.UTC)


class Label(BaseModel):
    label: str
    confidence: float


class ImageStatus(BaseModel):
    """The ``GET /api/images/{image_id}`` answer."""

    image_id: str
    image_name: str
    status: Literal["pending", "classified", "failed"]
    classifications: list[Label] = []
    model_id: str | None = None
    error: str | None = None


class ImageResult(ImageStatus):
    """One row of ``GET /api/results`` and of the results page."""

    upload: datetime.datetime | None = None
    width: int | None = None
    height: int | None = None
    size_bytes: int | None = None
    content_type: str | None = None
    latency_ms: float | None = None


class ResultsPage(BaseModel):
    rows: list[ImageResult]
    total: int


@dataclasses.dataclass(frozen=True)
class ResultsFilter:
    label: str | None = None
    min_confidence: float | None = None
    limit: int = 50
    offset: int = 0
    q: str | None = None  # label substring, any case; takes the place of ``label``
    # Only this model's rows (the current model's by default; one image has one row per
    # model that classified it). None: every model's rows.
    model_id: str | None = None
    # False when model_id names another model than the current one: failed images (which
    # have no model) are then not listed.
    current_model: bool = True

    @property
    def where(self) -> dict[str, Any] | None:
        return {"model_id": self.model_id} if self.model_id else None

    @property
    def active(self) -> bool:
        return self.label is not None or self.q is not None or self.min_confidence is not None

    def item_filter(self) -> ItemFilter | None:
        if not self.active:
            return None
        return ItemFilter(
            column="classifications",
            field="label",
            value=self.q if self.q is not None else self.label,
            contains=self.q is not None,
            score_field="confidence",
            min_score=self.min_confidence,
        )


@dependency(scope=Scope.REPLICA)
class StatusCache:
    """The newest ``size`` classified answers, by (image, model): a model's row never
    changes, so later status polls of it need no warehouse query. One per replica."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._items: collections.OrderedDict[tuple[str, str | None], ImageResult] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str | None]) -> ImageResult | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[str, str | None], result: ImageResult) -> None:
        with self._lock:
            self._items[key] = result
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


def find_image(
    image_id: str,
    *,
    table: TableQuery,
    failures: FailureLog,
    objects: ObjectStore,
    model_id: str | None = None,
    cache: StatusCache | None = None,
) -> ImageResult:
    """The status of ``image_id``; ``LookupError`` when no such image was ever stored.

    With several rows (one per model that classified it), ``model_id``'s row, else the
    newest; kept in ``cache``. ``InvalidImageIdError`` (a ``ValueError``) when the id is
    malformed.
    """
    key, version = parse_image_id(image_id)
    cached = cache.get((image_id, model_id)) if cache is not None else None
    if cached is not None:
        return cached
    rows = table.select(where={"image_id": image_id}, limit=20).records()
    if rows:
        preferred = [row for row in rows if row["model_id"] == model_id]
        if preferred and cache is not None:
            cache.put((image_id, model_id), classified(preferred[0]))
        return classified((preferred or rows)[0])
    failure = failures.for_object(objects.bucket_name, key)
    if failure is not None and failure.version == version:
        return failed(failure)
    stored = objects.stat(key)
    if stored is None:
        raise LookupError(image_id)
    return ImageResult(
        image_id=image_id,
        image_name=display_name(stored.metadata.get(IMAGE_NAME_METADATA) or os.path.basename(key)),
        status="pending",
    )


def list_results(
    wanted: ResultsFilter, *, table: TableQuery, failures: FailureLog
) -> tuple[list[ImageResult], int]:
    """This page of results, newest first, and how many match in all.

    Failed images have no labels, so they are listed only when no filter is set.
    """
    item = wanted.item_filter()
    where = _model_filter(wanted, table)
    if item is not None:
        rows = table.select(
            where=where, item=item, order_by="upload", limit=wanted.limit, offset=wanted.offset
        ).records()
        return [classified(row) for row in rows], table.count(where=where, item=item)
    failed_count = failures.count() if wanted.current_model else 0
    total = table.count(where=where) + failed_count
    if not failed_count:
        rows = table.select(
            where=where, order_by="upload", limit=wanted.limit, offset=wanted.offset
        ).records()
        return [classified(row) for row in rows], total
    # Merge the two newest-first lists. With F failures, a row on the page has at most F
    # failures before it, so only rows ranked offset - F .. offset + limit can be on it:
    # at most limit + F rows are read, however deep the page (a huge offset must not make
    # the server read the whole table).
    window = wanted.offset + wanted.limit
    letters = [failed(f) for f in failures.list(limit=min(window, MAX_FAILED_LISTED))]
    skip = max(0, wanted.offset - len(letters))
    page_rows = [
        classified(row)
        for row in table.select(
            where=where, order_by="upload", limit=window - skip, offset=skip
        ).records()
    ]
    if not page_rows and skip:
        return [], total  # fewer rows than skipped: the page lies past the end
    # Failures newer than the first row read sit before it, above the page (when skip > 0).
    boundary = (page_rows[0].upload or _EPOCH) if skip else None
    above = 0
    merged = page_rows.copy()
    for letter in letters:
        if boundary is not None and (letter.upload or _EPOCH) > boundary:
            above += 1
        else:
            merged.append(letter)
    merged.sort(key=lambda result: result.upload or _EPOCH, reverse=True)
    start = wanted.offset - skip - above
    return merged[start : start + wanted.limit], total


def _model_filter(wanted: ResultsFilter, table: TableQuery) -> dict[str, Any] | None:
    """``wanted.where``, or None while every row is that model's: then the filter changes
    nothing, and leaving it out keeps the warehouse's label index usable."""
    where = wanted.where
    if where is None:
        return None
    lowest, highest = table.query("SELECT MIN(model_id), MAX(model_id) FROM {table}").rows[0]
    return None if lowest == highest == wanted.model_id else where


@dataclasses.dataclass(frozen=True)
class ModelRows:
    model_id: str
    rows: int


def models_in_table(table: TableQuery) -> list[ModelRows]:
    """Every model that has rows in the table, the most recently used first."""
    result = table.query(
        "SELECT model_id, COUNT(*) AS n, MAX(upload) AS last_upload FROM {table} "
        "GROUP BY model_id ORDER BY last_upload DESC"
    )
    return [ModelRows(str(row[0]), int(row[1])) for row in result.rows]


def classified(row: dict[str, Any]) -> ImageResult:
    return ImageResult(
        image_id=row["image_id"],
        image_name=row["image_name"],
        status="classified",
        upload=row["upload"],
        classifications=[Label(**c) for c in row["classifications"]],
        model_id=row["model_id"],
        width=row["width"],
        height=row["height"],
        size_bytes=row["size_bytes"],
        content_type=row["content_type"],
        latency_ms=row["latency_ms"],
    )


def failed(failure: Failure) -> ImageResult:
    metadata = json.loads(failure.metadata or "{}")
    return ImageResult(
        image_id=image_id_for(failure.file_path, failure.version),
        image_name=display_name(
            metadata.get(IMAGE_NAME_METADATA) or os.path.basename(failure.file_path)
        ),
        status="failed",
        upload=failure.event_time,
        size_bytes=failure.size,
        error=failure.error,
    )
