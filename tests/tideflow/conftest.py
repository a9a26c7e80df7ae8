from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.conftest import TideflowProcess
from tests.rows import Row
from tideflow.io.duckdb import DuckDBDataset, DuckDBTable

TEXTFLOW = Path(__file__).parent / "textflow"


@pytest.fixture
def textflow(tideflow_factory: Callable[..., TideflowProcess]) -> Callable[..., TideflowProcess]:
    """``textflow(env=...)`` -> a ``tideflow run`` of the small word-counting test flow."""

    def make(**env: str) -> TideflowProcess:
        return tideflow_factory(TEXTFLOW, env=env)

    return make


def upload(app: TideflowProcess, name: str, text: str) -> httpx.Response:
    files = {"text_file": (name, text.encode(), "text/plain")}
    return httpx.post(f"{app.base_url}/upload", files=files, timeout=30)


def rows_by_key(app: TideflowProcess) -> dict[str, int]:
    """Row count per key, read from the DuckDB file (the app must be stopped)."""
    path = app.home / "warehouse.duckdb"
    with duckdb.connect(str(path), read_only=True) as con:
        found = con.execute("SELECT key, count(*) FROM texts GROUP BY key").fetchall()
    return dict(found)


def wait_for_rows(app: TideflowProcess, expected: int, *, timeout: float = 60) -> dict[str, int]:
    """Poll the running app until ``expected`` rows exist; rows per key."""
    deadline = time.monotonic() + timeout
    found: dict[str, int] = {}
    while time.monotonic() < deadline:
        found = httpx.get(f"{app.base_url}/rows", timeout=10).json()
        if sum(found.values()) >= expected:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{found} after {timeout}s, expected {expected} rows:\n{app.log()}")


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DuckDBTable]:
    """A DuckDB table of ``tests.rows.Row`` in a fresh home."""
    monkeypatch.setenv("TIDEFLOW_HOME", str(tmp_path))
    dataset = DuckDBDataset("warehouse.duckdb")
    table = DuckDBTable(dataset, "rows").options(schema=Row)
    dataset.apply()
    table.apply()
    yield table
    dataset.destroy()
