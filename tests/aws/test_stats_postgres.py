"""/stats on a PostgreSQL warehouse: the app built in-process, its results table a real
PostgreSQL table (tests/app/test_stats.py has DuckDB, tests/gcp BigQuery)."""

from __future__ import annotations

from pathlib import Path

from image_classification.schemas import ImageClassificationRow
from tests.app.support import check_stats_charts, in_process_app
from tideflow.io.postgres import PostgresTable


def test_stats_draws_its_charts_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    table = PostgresTable(postgres_url, "image_classification")
    table = table.options(schema=ImageClassificationRow)
    table.database.apply()
    table.apply()
    with in_process_app(tmp_path / "home") as app:
        check_stats_charts(app, table)
