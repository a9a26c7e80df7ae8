"""``GET /api/results.csv``: the results matching a filter as CSV, streamed page by page.

Rows are read from the table ``PAGE_ROWS`` at a time, so a download of 100,000 rows never
holds more than one page in memory. ``classifications`` is a JSON list; the best label
and its confidence have their own columns for spreadsheets.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
from collections.abc import Iterator
from typing import Any

from image_classification.processors.results import ResultsFilter
from tideflow.dependencies.protocols import TableQuery

PAGE_ROWS = 2000
CSV_COLUMNS = (
    "image_id",
    "image_name",
    "upload",
    "top_label",
    "top_confidence",
    "classifications",
    "model_id",
    "width",
    "height",
    "size_bytes",
    "content_type",
    "latency_ms",
)


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str, ensure_ascii=False)
    return value


def csv_row(row: dict[str, Any]) -> list[Any]:
    labels = row.get("classifications") or []
    top = labels[0] if labels else {}
    values = {**row, "top_label": top.get("label"), "top_confidence": top.get("confidence")}
    return [_csv_value(values.get(name)) for name in CSV_COLUMNS]


def stream_csv(wanted: ResultsFilter, table: TableQuery) -> Iterator[str]:
    """The header, then the matching rows newest first, one page of CSV text at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    item = wanted.item_filter()
    offset = 0
    while True:
        rows = table.select(item=item, order_by="upload", limit=PAGE_ROWS, offset=offset).records()
        if not rows:
            return
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(csv_row(row) for row in rows)
        yield buffer.getvalue()
        if len(rows) < PAGE_ROWS:
            return
        offset += len(rows)


def csv_file_name(wanted: ResultsFilter) -> str:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    return f"results-{stamp}.csv"
