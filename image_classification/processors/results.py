"""Reading results back: one image's status, and the newest-first list with filters.

An image is ``classified`` when the table has its row, ``failed`` when its event was
dead-lettered (the reason is the consumer's error), ``pending`` when the object is stored
but neither happened yet.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from typing import Any, Literal

from pydantic import BaseModel

from image_classification.image_ids import image_id_for, parse_image_id
from image_classification.processors.uploads import IMAGE_NAME_METADATA, display_name
from tideflow.io.strategies import ItemFilter, Source, TableReader
from tideflow.types import DeadLetter

# Failed images are listed from the dead-letter list, newest first, up to this many.
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

    @property
    def active(self) -> bool:
        return self.label is not None or self.min_confidence is not None

    def item_filter(self) -> ItemFilter | None:
        if not self.active:
            return None
        return ItemFilter(
            column="classifications",
            field="label",
            value=self.label,
            score_field="confidence",
            min_score=self.min_confidence,
        )


def find_image(image_id: str, *, table: TableReader, source: Source, bucket: Any) -> ImageResult:
    """The status of ``image_id``; ``LookupError`` when no such image was ever stored.

    ``InvalidImageIdError`` (a ``ValueError``) when the id is malformed.
    """
    key, generation = parse_image_id(image_id)
    rows = table.select(where={"image_id": image_id}, limit=1).records()
    if rows:
        return classified(rows[0])
    letter = source.dead_letter_for(key)
    if letter is not None and letter.event.generation == generation:
        return failed(letter)
    blob = bucket.get_blob(key)
    if blob is None:
        raise LookupError(image_id)
    return ImageResult(
        image_id=image_id,
        image_name=display_name(blob.metadata.get(IMAGE_NAME_METADATA) or os.path.basename(key)),
        status="pending",
    )


def list_results(
    wanted: ResultsFilter, *, table: TableReader, source: Source
) -> tuple[list[ImageResult], int]:
    """This page of results, newest first, and how many match in all.

    Failed images have no labels, so they are listed only when no filter is set.
    """
    item = wanted.item_filter()
    if item is not None:
        rows = table.select(
            item=item, order_by="upload", limit=wanted.limit, offset=wanted.offset
        ).records()
        return [classified(row) for row in rows], table.count(item=item)
    letters = source.dead_letters(limit=MAX_FAILED_LISTED)
    total = table.count() + len(letters)
    if not letters:
        rows = table.select(order_by="upload", limit=wanted.limit, offset=wanted.offset).records()
        return [classified(row) for row in rows], total
    # Merge the two newest-first lists: the page can only hold rows among the first
    # offset + limit of each.
    window = wanted.offset + wanted.limit
    rows = table.select(order_by="upload", limit=window).records()
    merged = [classified(row) for row in rows] + [failed(letter) for letter in letters]
    merged.sort(key=lambda result: result.upload or _EPOCH, reverse=True)
    return merged[wanted.offset : window], total


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


def failed(letter: DeadLetter) -> ImageResult:
    event = letter.event
    return ImageResult(
        image_id=image_id_for(event.file_path, event.generation),
        image_name=display_name(
            event.metadata.get(IMAGE_NAME_METADATA) or os.path.basename(event.file_path)
        ),
        status="failed",
        upload=event.event_time,
        size_bytes=event.size,
        error=letter.error,
    )
