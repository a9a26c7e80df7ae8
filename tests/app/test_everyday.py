"""Everyday use through the running app: label search, CSV download, /stats, and the
CLI's query/export reading through the running app (it holds the DuckDB file).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from tests.app.support import CHELSEA, upload, wait_for_status
from tests.conftest import TideflowProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cat(shared_app: TideflowProcess) -> dict[str, Any]:
    response = upload(shared_app, CHELSEA.read_bytes(), "everyday-cat.png")
    assert response.status_code == 202, response.text
    status = wait_for_status(shared_app, response.json()["status_url"])
    assert status["status"] == "classified", status
    return status


def _cat_label(status: dict[str, Any]) -> dict[str, Any]:
    """The photo's best label containing "cat" (chelsea.png is a tabby cat)."""
    return next(c for c in status["classifications"] if "cat" in c["label"].lower())


def _ids(answer: httpx.Response) -> set[str]:
    assert answer.status_code == 200, answer.text
    return {row["image_id"] for row in answer.json()["rows"]}


def test_q_finds_label_parts_in_any_case(shared_app: TideflowProcess, cat: dict[str, Any]) -> None:
    url = f"{shared_app.base_url}/api/results"
    assert cat["image_id"] in _ids(httpx.get(url, params={"q": "CaT", "limit": 200}))
    assert cat["image_id"] not in _ids(httpx.get(url, params={"q": "no such thing"}))
    # The minimum confidence applies to the matching label, not to any label.
    sure = _cat_label(cat)["confidence"]
    above = {"q": "cat", "min_confidence": f"{min(sure + 0.0005, 1.0):.4f}", "limit": 200}
    below = {"q": "cat", "min_confidence": f"{max(sure - 0.0005, 0.0):.4f}", "limit": 200}
    top_other = max(c["confidence"] for c in cat["classifications"] if "cat" not in c["label"])
    if top_other <= sure:  # no other label could let it through
        assert cat["image_id"] not in _ids(httpx.get(url, params=above))
    assert cat["image_id"] in _ids(httpx.get(url, params=below))
    both = httpx.get(url, params={"q": "cat", "label": "tabby"})
    assert both.status_code == 400
    assert "not both" in both.json()["detail"]


def test_results_page_searches_and_links_the_csv(
    shared_app: TideflowProcess, cat: dict[str, Any]
) -> None:
    page = httpx.get(f"{shared_app.base_url}/image-upload-results", params={"q": "cat"})
    assert page.status_code == 200
    assert f'data-image-id="{cat["image_id"]}"' in page.text
    assert 'id="label-search" name="q" type="search" value="cat"' in page.text
    assert 'id="download-csv"' in page.text and 'href="/api/results.csv?q=cat"' in page.text


def test_results_csv_is_streamed_with_the_page_filters(
    shared_app: TideflowProcess, cat: dict[str, Any]
) -> None:
    with httpx.stream(
        "GET", f"{shared_app.base_url}/api/results.csv", params={"q": "cat"}, timeout=30
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "chunked" in response.headers.get("transfer-encoding", "")
        assert response.headers["content-disposition"].startswith('attachment; filename="results-')
        text = response.read().decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    row = next(r for r in rows if r["image_id"] == cat["image_id"])
    assert row["image_name"] == "everyday-cat.png"
    assert row["top_label"] == cat["classifications"][0]["label"]
    assert json.loads(row["classifications"]) == cat["classifications"]
    for other in rows:
        assert "cat" in other["classifications"].lower()


def test_stats_page_draws_its_charts(shared_app: TideflowProcess, cat: dict[str, Any]) -> None:
    page = httpx.get(f"{shared_app.base_url}/stats")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    text = page.text
    assert 'id="nav-stats" href="/stats" aria-current="page"' in text
    assert f'data-label="{cat["classifications"][0]["label"]}"' in text  # a top-labels bar
    assert 'class="chart time-chart rate-chart"' in text
    assert 'class="chart time-chart latency-chart"' in text
    assert "efficientnet_lite0@" in text  # models in use
    assert "<script>" not in text and "style=" not in text


def test_cli_reads_and_exports_through_the_running_app(
    shared_app: TideflowProcess, cat: dict[str, Any], tmp_path: Path
) -> None:
    listed = shared_app.cli("query", "--results", "--q", "cat", "--limit", "3", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert cat["image_id"] in {row["image_id"] for row in json.loads(listed.stdout)}

    narrow = {**shared_app.env, "COLUMNS": "80"}
    shared_app.env, saved = narrow, shared_app.env
    try:
        table = shared_app.cli("query", "--results", "--limit", "5")
    finally:
        shared_app.env = saved
    assert table.returncode == 0, table.stderr
    assert max(len(line) for line in table.stdout.splitlines()) <= 80, table.stdout
    # Timestamps come through the app's socket as text and are still shortened, not cut.
    assert re.search(r"everyday-cat\.png .* \d\d-\d\d \d\d:\d\d *$", table.stdout, re.M), (
        table.stdout
    )

    out = tmp_path / "cats.parquet"
    exported = shared_app.cli("export", "--format", "parquet", "--q", "cat", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    names = [
        r[0]
        for r in duckdb.execute(
            "SELECT image_name FROM read_parquet($p)", {"p": str(out)}
        ).fetchall()
    ]
    assert "everyday-cat.png" in names
