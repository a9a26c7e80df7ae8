"""/stats on a BigQuery warehouse (the emulator): the app built in-process, its results table
a BigQuery table (tests/app/test_stats.py has DuckDB, tests/aws PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from image_classification.schemas import ImageClassificationRow
from tests.app.support import check_stats_charts, in_process_app
from tests.gcp.conftest import PROJECT, unique
from tideflow.io.gcp import BigQueryDataset, BigQueryTable


def test_stats_draws_its_charts_on_bigquery(bigquery_emulator: str, tmp_path: Path) -> None:
    dataset_name = unique("stats").replace("-", "_")
    dataset = BigQueryDataset(project_id=PROJECT, dataset_name=dataset_name)
    table = BigQueryTable(dataset, "image_classification").options(schema=ImageClassificationRow)
    for primitive in (dataset, table):
        primitive.apply()
    try:
        with in_process_app(tmp_path / "home") as app:
            check_stats_charts(app, table)
    finally:
        for primitive in (table, dataset):
            primitive.destroy()
