"""select() paging is bounded on every warehouse's reader: a client's huge offset is an
``InvalidQueryError`` (the app answers 400), never an out-of-range OFFSET in SQL (a 500)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tideflow.exceptions import InvalidQueryError
from tideflow.io.duckdb import DuckDBDataset, DuckDBTable
from tideflow.io.gcp.bigquery_io import BigQueryReader
from tideflow.io.sql import SqlTableReader
from tideflow.io.strategies import MAX_SELECT_LIMIT, MAX_SELECT_OFFSET

OUT_OF_RANGE = [
    {"offset": 9_223_372_036_854_775_807},
    {"offset": 10**30},
    {"offset": -1},
    {"offset": MAX_SELECT_OFFSET + 1},
    {"limit": 10**30},
    {"limit": MAX_SELECT_LIMIT + 1},
    {"limit": -5},
]


@dataclasses.dataclass
class Row:
    name: str


@pytest.fixture
def duckdb_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SqlTableReader:
    monkeypatch.setenv("TIDEFLOW_HOME", str(tmp_path))
    dataset = DuckDBDataset("warehouse.duckdb")
    table = DuckDBTable(dataset, "rows").options(schema=Row)
    dataset.apply()
    table.apply()
    table.sink().write([("1", Row("a"))])
    reader = table.reader()
    assert isinstance(reader, SqlTableReader)
    return reader


@pytest.mark.parametrize("paging", OUT_OF_RANGE)
def test_duckdb_reader_refuses_out_of_range_paging(
    duckdb_reader: SqlTableReader, paging: dict[str, int]
) -> None:
    with pytest.raises(InvalidQueryError, match=r"limit|offset"):
        duckdb_reader.select(order_by="name", **paging)
    # The largest accepted values work.
    result = duckdb_reader.select(order_by="name", limit=MAX_SELECT_LIMIT, offset=MAX_SELECT_OFFSET)
    assert result.rows == []


@pytest.mark.parametrize("paging", OUT_OF_RANGE)
def test_bigquery_reader_refuses_before_any_call(paging: dict[str, int]) -> None:
    def no_client() -> None:
        raise AssertionError("no request may be sent for out-of-range paging")

    reader = BigQueryReader(no_client, table_ref="p.d.t", location="US")  # type: ignore[arg-type]
    with pytest.raises(InvalidQueryError):
        reader.select(order_by="name", **paging)
