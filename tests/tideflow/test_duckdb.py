"""The DuckDB warehouse: schema from dataclasses, idempotent writes, portable reads."""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path

import pytest

from tests.conftest import small_tmpfs
from tests.rows import Label, Row
from tideflow.exceptions import ConfigError, ReadError, RowError, SinkUnavailableError
from tideflow.io import export
from tideflow.io.duckdb import DuckDBDataset, DuckDBTable
from tideflow.io.primitive import PlanAction
from tideflow.io.strategies import ItemFilter


@dataclasses.dataclass
class RowV2(Row):
    score: float | None = None


def _row(name: str, *labels: tuple[str, float], minute: int = 0) -> Row:
    at = datetime.datetime(2026, 1, 1, 12, minute, tzinfo=datetime.UTC)
    return Row(name, [Label(label, conf) for label, conf in labels], at)


def test_apply_is_idempotent_and_additive(table: DuckDBTable) -> None:
    assert table.plan().action is PlanAction.NO_CHANGE
    table.options(schema=RowV2)
    step = table.plan()
    assert step.action is PlanAction.UPDATE
    assert "score" in step.detail
    table.apply()
    assert table.plan().action is PlanAction.NO_CHANGE


def test_options_rejects_unknown_settings(table: DuckDBTable) -> None:
    with pytest.raises(ConfigError, match="unknown option 'shema'"):
        table.options(shema=Row)


def test_writes_are_idempotent_on_row_id(table: DuckDBTable) -> None:
    sink = table.sink()
    sink.write([("e1:0", _row("a", ("cat", 0.9))), ("e2:0", _row("b", ("dog", 0.8)))])
    sink.write([("e1:0", _row("a-again", ("cat", 0.9)))])  # a redelivery
    sink.write([("e1:0", _row("a-again", ("cat", 0.9))), ("e3:0", _row("c", ("owl", 0.5)))])
    reader = table.reader()
    assert reader.count() == 3
    names = [r[0] for r in reader.query("SELECT name FROM {table} ORDER BY name").rows]
    assert names == ["a", "b", "c"]


def test_select_filters_items_orders_and_pages(table: DuckDBTable) -> None:
    table.sink().write(
        [
            ("1", _row("cat-photo", ("Tabby", 0.7), ("Egyptian cat", 0.2), minute=1)),
            ("2", _row("dog-photo", ("beagle", 0.9), minute=2)),
            ("3", _row("cat-low", ("tabby", 0.1), minute=3)),
        ]
    )
    reader = table.reader()
    newest = reader.select(order_by="at", limit=2)
    assert [r[0] for r in newest.rows] == ["cat-low", "dog-photo"]
    assert "_tideflow_row_id" not in newest.columns
    assert [r[0] for r in reader.select(order_by="at", limit=2, offset=2).rows] == ["cat-photo"]

    tabby = ItemFilter(column="labels", field="label", value="TABBY")
    assert reader.count(item=tabby) == 2
    confident = ItemFilter(
        column="labels", field="label", value="tabby", score_field="confidence", min_score=0.5
    )
    assert [r[0] for r in reader.select(item=confident).rows] == ["cat-photo"]
    assert reader.count(where={"name": "dog-photo"}) == 1
    record = reader.select(where={"name": "dog-photo"}).records()[0]
    assert record["labels"] == [{"label": "beagle", "confidence": 0.9}]


def test_table_without_schema_says_how_to_declare_it(tmp_path: Path) -> None:
    table = DuckDBTable(DuckDBDataset(tmp_path / "w.duckdb"), "t")
    with pytest.raises(Exception, match=r"options\(schema=YourRowDataclass\)"):
        table.plan()


def test_a_refused_row_is_named_and_the_others_are_written(table: DuckDBTable) -> None:
    bad = dataclasses.replace(_row("bad"), at="not a time")  # type: ignore[arg-type]
    with pytest.raises(RowError) as raised:
        table.sink().write([("r1", _row("good")), ("r2", bad), ("r3", _row("also good"))])
    assert list(raised.value.rejected) == ["r2"]
    assert "not a time" in raised.value.rejected["r2"]
    assert table.reader().count() == 2


def test_a_schema_must_be_a_dataclass_of_supported_columns(table: DuckDBTable) -> None:
    with pytest.raises(ConfigError, match="must be a dataclass"):
        table.options(schema=dict)


def test_query_errors_are_read_errors(table: DuckDBTable) -> None:
    with pytest.raises(ReadError, match="query failed"):
        table.reader().query("SELECT nope FROM {table}")


def test_a_full_disk_is_named_in_the_write_error(tmp_path: Path) -> None:
    """DuckDB ends a transaction whose COMMIT fails; the error the worker logs and retries
    on must be the disk's, not the ROLLBACK's "no transaction is active"."""
    with small_tmpfs(tmp_path / "disk", "3m") as disk:
        dataset = DuckDBDataset(disk / "warehouse.duckdb")
        table = DuckDBTable(dataset, "rows").options(schema=Row)
        dataset.apply()
        table.apply()
        sink = table.sink()
        try:
            with pytest.raises(SinkUnavailableError) as refused:
                for batch in range(500):
                    rows = [_row(f"{batch}-{n}-" + "x" * 2000, ("cat", 0.9)) for n in range(50)]
                    sink.write([(row.name, row) for row in rows])
            assert "No space left on device" in str(refused.value)
            assert "no transaction is active" not in str(refused.value)
        finally:
            dataset.destroy()


def test_the_portable_export_pages_through_select_like_copy_writes(
    table: DuckDBTable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What warehouses without their own export (PostgreSQL) run: ``pages`` through select.
    monkeypatch.setattr(export, "PAGE_ROWS", 3)
    table.sink().write([(f"e{n}:0", _row(f"r{n}", ("cat", 0.5), minute=n)) for n in range(7)])
    reader = table.reader()
    assert [len(rows) for _, rows in reader.pages(order_by="at")] == [3, 3, 1]

    paged, copied = tmp_path / "paged.jsonl", tmp_path / "copied.jsonl"
    assert export.export_pages(reader, paged, "jsonl", order_by="at") == 7
    assert reader.export(copied, "jsonl", order_by="at") == 7
    assert [json.loads(line)["name"] for line in paged.read_text().splitlines()] == [
        f"r{n}" for n in reversed(range(7))
    ]
    assert [json.loads(line)["name"] for line in copied.read_text().splitlines()] == [
        f"r{n}" for n in reversed(range(7))
    ]
    assert export.export_pages(reader, tmp_path / "paged.parquet", "parquet", order_by="at") == 7
