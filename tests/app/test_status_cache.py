"""Status polls: once an image has its model's row, later polls skip the warehouse."""

from __future__ import annotations

import datetime
from typing import Any

from image_classification.image_ids import image_id_for
from image_classification.processors.results import StatusCache, find_image
from tideflow.types import QueryResult


class CountingTable:
    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row
        self.selects = 0

    def select(self, **_: Any) -> QueryResult:
        self.selects += 1
        return QueryResult(columns=list(self.row), rows=[tuple(self.row.values())])


def _row(image_id: str, model_id: str) -> dict[str, Any]:
    return {
        "image_id": image_id,
        "image_name": "cat.jpg",
        "upload": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        "classifications": [{"label": "tabby", "confidence": 0.9}],
        "model_id": model_id,
        "width": 10,
        "height": 10,
        "size_bytes": 100,
        "content_type": "image/jpeg",
        "latency_ms": 1.0,
    }


def _poll(table: CountingTable, image_id: str, model_id: str, cache: StatusCache) -> Any:
    return find_image(
        image_id,
        table=table,  # type: ignore[arg-type]
        failures=None,  # type: ignore[arg-type]
        objects=None,  # type: ignore[arg-type]
        model_id=model_id,
        cache=cache,
    )


def test_a_classified_image_is_read_from_the_warehouse_once() -> None:
    image_id = image_id_for("uploads/status-cache.jpg", "1")
    table = CountingTable(_row(image_id, "model-a"))
    cache = StatusCache()
    for _ in range(3):
        found = _poll(table, image_id, "model-a", cache)
        assert (found.status, found.model_id) == ("classified", "model-a")
    assert table.selects == 1


def test_another_models_row_is_not_cached() -> None:
    # Only an older model's row so far: the current model's row may still come.
    image_id = image_id_for("uploads/status-cache-old.jpg", "1")
    table = CountingTable(_row(image_id, "model-old"))
    cache = StatusCache()
    for _ in range(2):
        _poll(table, image_id, "model-new", cache)
    assert table.selects == 2
