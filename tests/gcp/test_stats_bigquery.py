"""/stats on a BigQuery warehouse (the emulator): the app built in-process, its results table
a BigQuery table (tests/app/test_stats.py has DuckDB, tests/aws PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from image_classification.schemas import ImageClassificationRow
from tests.app.support import check_stats_charts, in_process_app
from tests.gcp.conftest import PROJECT, unique
from tideflow.io.gcp import BigQueryDataset, BigQueryTable


@pytest.fixture
def table(bigquery_emulator: str) -> Iterator[BigQueryTable]:
    dataset = BigQueryDataset(project_id=PROJECT, dataset_name=unique("stats").replace("-", "_"))
    created = BigQueryTable(dataset, "image_classification").options(schema=ImageClassificationRow)
    dataset.apply()
    created.apply()
    yield created
    created.destroy()
    dataset.destroy()


def test_stats_draws_its_charts_on_bigquery(table: BigQueryTable, tmp_path: Path) -> None:
    with in_process_app(tmp_path / "home") as app:
        check_stats_charts(app, table)
