"""The results list merges classified rows and failures newest first; a deep page reads at
most limit + (failures) rows, and gives the same page as merging everything would."""

from __future__ import annotations

import datetime
import random
from typing import Any

import pytest

from image_classification.processors.results import (
    ResultsFilter,
    classified,
    failed,
    list_results,
)
from tideflow.io.strategies import check_paging
from tideflow.types import Failure, QueryResult

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
COLUMNS = [
    "image_id",
    "image_name",
    "upload",
    "classifications",
    "model_id",
    "width",
    "height",
    "size_bytes",
    "content_type",
    "latency_ms",
]


class Table:
    def __init__(self, uploads: list[datetime.datetime]) -> None:
        ordered = sorted(uploads, reverse=True)
        self.rows = [
            (f"dXBsb2Fkcy9y{i}.1", f"r{i}", at, [], "m", 1, 1, 1, "image/png", 1.0)
            for i, at in enumerate(ordered)
        ]
        self.largest_read = 0

    def select(self, *, order_by: str, limit: int, offset: int = 0, **_: Any) -> QueryResult:
        check_paging(limit, offset)
        self.largest_read = max(self.largest_read, limit)
        return QueryResult(columns=COLUMNS, rows=self.rows[offset : offset + limit])

    def count(self, **_: Any) -> int:
        return len(self.rows)


class Failures:
    def __init__(self, uploads: list[datetime.datetime]) -> None:
        self.failures = sorted(
            (
                Failure(
                    event_id=f"b/f{i}#1",
                    bucket="b",
                    file_path=f"uploads/f{i}.png",
                    version="1",
                    size=1,
                    event_time=at,
                    metadata="{}",
                    error="bad",
                    attempts=1,
                    failed_at=at,
                )
                for i, at in enumerate(uploads)
            ),
            key=lambda f: f.event_time,
            reverse=True,
        )

    def list(self, *, limit: int, offset: int = 0) -> list[Failure]:
        return self.failures[offset : offset + limit]

    def count(self) -> int:
        return len(self.failures)


def _everything_merged(table: Table, failures: Failures) -> list[str]:
    merged = [classified(dict(zip(COLUMNS, row, strict=True))) for row in table.rows]
    merged += [failed(f) for f in failures.failures]
    merged.sort(key=lambda r: r.upload or T0, reverse=True)
    return [r.image_id for r in merged]


@pytest.mark.parametrize("seed", range(6))
def test_every_page_matches_the_full_merge(seed: int) -> None:
    rng = random.Random(seed)
    minutes = rng.choice([30, 400])  # few distinct times: many ties
    table = Table([T0 + datetime.timedelta(minutes=rng.randrange(minutes)) for _ in range(300)])
    failures = Failures(
        [
            T0 + datetime.timedelta(minutes=rng.randrange(minutes))
            for _ in range(rng.randrange(1, 40))
        ]
    )
    expected = _everything_merged(table, failures)
    for offset in [0, 1, 5, 39, 40, 41, 100, 250, 299, 330, 339, 340, 400, 10**9]:
        for limit in (1, 7, 50, 200):
            page, total = list_results(
                ResultsFilter(label=None, min_confidence=None, limit=limit, offset=offset),
                table=table,  # type: ignore[arg-type]
                failures=failures,  # type: ignore[arg-type]
            )
            assert total == len(expected)
            got = [r.image_id for r in page]
            assert got == expected[offset : offset + limit], (offset, limit)
    # However deep the page, only limit + failures rows were read.
    assert table.largest_read <= 200 + failures.count()
