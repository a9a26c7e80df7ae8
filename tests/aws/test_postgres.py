"""PostgresTable against a real PostgreSQL 15 (a throwaway cluster per session)."""

from __future__ import annotations

import dataclasses
import datetime
import os
import threading
from pathlib import Path

import duckdb
import pytest

from tideflow.exceptions import ConfigError, InvalidQueryError, ReadError, RowError
from tideflow.io.postgres import PostgresDatabase, PostgresTable
from tideflow.io.primitive import PlanAction
from tideflow.io.strategies import ItemFilter
from tideflow.types import Failure, FileChangeEvent

NOW = datetime.datetime(2026, 11, 22, 12, 0, tzinfo=datetime.UTC)


@dataclasses.dataclass(frozen=True)
class Label:
    label: str
    confidence: float


@dataclasses.dataclass(frozen=True)
class Row:
    image_id: str
    upload: datetime.datetime
    labels: list[Label]
    tags: list[str]
    width: int
    note: str | None = None


@dataclasses.dataclass(frozen=True)
class RowV2(Row):
    height: int | None = None


def _row(i: int, label: str = "tabby", confidence: float = 0.9) -> Row:
    return Row(
        image_id=f"img-{i}",
        upload=NOW + datetime.timedelta(minutes=i),
        labels=[Label(label, confidence), Label("other", 0.05)],
        tags=["a", "b"],
        width=i,
    )


@pytest.fixture
def table(postgres_url: str) -> PostgresTable:
    return PostgresTable(PostgresDatabase(postgres_url), "images").options(schema=Row)


def test_plan_apply_twice_add_column_destroy(table: PostgresTable) -> None:
    assert table.database.plan().action is PlanAction.NO_CHANGE
    assert table.plan().action is PlanAction.CREATE
    assert table.apply().action is PlanAction.CREATE
    assert table.apply().action is PlanAction.NO_CHANGE
    table.sink().write([("r1", _row(1))])
    grown = PostgresTable(table.database, "images").options(schema=RowV2)
    step = grown.plan()
    assert step.action is PlanAction.UPDATE and "height" in step.detail
    grown.apply()
    assert grown.plan().action is PlanAction.NO_CHANGE
    assert grown.reader().select().records()[0]["height"] is None
    assert table.plan_destroy().action is PlanAction.DELETE
    table.destroy()
    assert table.plan().action is PlanAction.CREATE
    assert table.destroy().action is PlanAction.NO_CHANGE


def test_idempotent_writes_and_reads(table: PostgresTable) -> None:
    table.apply()
    sink = table.sink()
    sink.write([(f"r{i}", _row(i)) for i in range(5)])
    sink.write([(f"r{i}", _row(i)) for i in range(3, 8)])  # a redelivered batch overlaps
    reader = table.reader()
    assert reader.count() == 8
    rows = reader.select(order_by="upload", limit=3).records()
    assert [r["image_id"] for r in rows] == ["img-7", "img-6", "img-5"]
    assert "_tideflow_row_id" not in rows[0]
    assert rows[0]["labels"][0] == {"label": "tabby", "confidence": 0.9}
    assert rows[0]["tags"] == ["a", "b"]
    assert rows[0]["upload"] == NOW + datetime.timedelta(minutes=7)
    assert reader.select(where={"image_id": "img-2"}).records()[0]["width"] == 2
    assert reader.select(order_by="upload", limit=2, offset=6).records()[-1]["image_id"] == "img-0"
    sink.write([("cat", _row(100, "Persian_cat", 0.3))])
    item = ItemFilter(column="labels", field="label", value="persian_CAT")
    assert reader.count(item=item) == 1
    strong = ItemFilter("labels", "label", "persian_cat", score_field="confidence", min_score=0.5)
    assert reader.count(item=strong) == 0
    assert reader.select(item=ItemFilter("labels", "label", "tabby")).records()
    result = reader.query("SELECT COUNT(*) AS n FROM {table} WHERE width >= $w", {"w": 5})
    assert result.records() == [{"n": 4}]
    assert reader.query("SELECT '100%' AS p").rows == [("100%",)]
    with pytest.raises(ReadError):
        reader.query("SELECT nope FROM {table}")


def test_concurrent_writers_keep_one_row_per_id(table: PostgresTable) -> None:
    table.apply()
    sinks = [table.sink() for _ in range(4)]
    ids = [f"r{i}" for i in range(60)]

    def write(sink_index: int) -> None:
        for start in range(0, 60, 6):
            sinks[sink_index].write([(i, _row(int(i[1:]))) for i in ids[start : start + 6]])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert table.reader().count() == 60


def test_a_refused_row_fails_alone(table: PostgresTable) -> None:
    table.apply()
    bad = dataclasses.replace(_row(2), image_id="nul\x00byte")  # text cannot hold NUL
    with pytest.raises(RowError) as caught:
        table.sink().write([("ok1", _row(1)), ("bad", bad), ("ok3", _row(3))])
    assert set(caught.value.rejected) == {"bad"}
    assert table.reader().count() == 2


def test_failure_log_beside_the_table(table: PostgresTable) -> None:
    table.apply()
    table.failure_table.apply()
    log = table.failure_log()
    event = FileChangeEvent(
        file_path="uploads/x.jpg", bucket="b", version="abc", size=3, event_time=NOW
    )
    failure = log.record(event, error="not an image", attempts=1)
    assert isinstance(failure, Failure)
    found = log.for_object("b", "uploads/x.jpg")
    assert found is not None and found.error == "not an image" and found.version == "abc"
    assert log.count() == 1
    assert [f.event_id for f in log.list(limit=10)] == [event.event_id]
    log.clear([found])
    assert log.for_object("b", "uploads/x.jpg") is None
    assert log.count() == 0
    log.record(event, error="still not an image", attempts=1)  # retried, failed again
    assert log.count() == 1 and len(log.list(limit=10)) == 1


def test_user_query_reads_in_a_read_only_transaction_and_caps_rows(
    table: PostgresTable,
) -> None:
    table.apply()
    table.sink().write([(f"id-{i}", _row(i)) for i in range(20)])
    reader = table.reader()
    # A read streams from a server-side cursor and stops at the cap.
    capped = reader.user_query(
        "SELECT image_id, width % 7 AS w FROM {table} ORDER BY width", max_rows=5
    )
    assert capped.columns == ["image_id", "w"] and capped.truncated
    assert capped.rows == [(f"img-{i}", i % 7) for i in range(5)]
    # Reads that would write or lock pass the statement check; the server refuses them.
    with pytest.raises(ReadError, match="cannot execute SELECT FOR UPDATE in a read-only"):
        reader.user_query("SELECT image_id FROM {table} FOR UPDATE")
    with pytest.raises(ReadError, match="must not contain data-modifying statements"):
        reader.user_query("WITH gone AS (DELETE FROM {table} RETURNING 1) SELECT * FROM gone")
    with pytest.raises(InvalidQueryError, match="DROP statements are not run"):
        reader.user_query("DROP TABLE {table}", allow_writes=True)
    changed = reader.user_query("DELETE FROM {table} WHERE width < 3", allow_writes=True)
    assert changed.rows == [(3,)]
    assert reader.count() == 17


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_pages_through_the_table(table: PostgresTable, tmp_path: Path, fmt: str) -> None:
    table.apply()
    table.sink().write([(f"id-{i}", _row(i)) for i in range(12)])
    out = tmp_path / f"rows.{fmt}"
    out.write_text("an older export")

    assert table.reader().export(out, fmt, order_by="upload") == 12

    reader = {"csv": "read_csv", "jsonl": "read_json_auto", "parquet": "read_parquet"}[fmt]
    found = duckdb.execute(f"SELECT image_id FROM {reader}($p)", {"p": str(out)}).fetchall()
    assert [r[0] for r in found] == [f"img-{i}" for i in range(11, -1, -1)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no partial file left
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="it is a FIFO; an export writes a regular file"):
        table.reader().export(fifo, fmt)


def test_settings_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POSTGRES_URL", raising=False)
    with pytest.raises(ConfigError, match="POSTGRES_URL"):
        PostgresDatabase()
    with pytest.raises(ConfigError, match="postgresql://"):
        PostgresDatabase("mysql://x")
    db = PostgresDatabase("postgresql://u:secret@127.0.0.1:1/db")
    assert "secret" not in db.primitive_id()
