"""/stats on DuckDB, in-process; PostgreSQL and BigQuery: tests/aws/test_stats_postgres.py and
tests/gcp/test_stats_bigquery.py. A warehouse without the page's SQL is a clear error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from image_classification.dependencies import results_table
from tests.app.support import check_stats_charts, in_process_app
from tideflow.io.strategies import TableReader


def test_stats_draws_its_charts_on_duckdb(tmp_path: Path) -> None:
    with in_process_app(tmp_path / "home") as app:
        check_stats_charts(app, app.flow.consumers[0].sink)  # the local stack's own table


def test_a_warehouse_without_stats_sql_is_a_clear_error(tmp_path: Path) -> None:
    with in_process_app(tmp_path / "home") as app:
        reader = app.flow.consumers[0].sink.reader()

        def unknown_warehouse() -> TableReader:
            reader.dialect = dataclasses.replace(reader.dialect, name="mysql")
            return reader

        app.flow.dependency_overrides[results_table] = unknown_warehouse
        page = app.client.get("/stats")
    assert page.status_code == 501
    assert page.json()["detail"] == (
        "/stats has no SQL for the 'mysql' warehouse (it has duckdb, postgresql, bigquery): "
        "add its queries to STATS_SQL in image_classification/processors/stats.py"
    )
