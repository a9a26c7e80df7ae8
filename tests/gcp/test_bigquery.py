"""BigQuery dataset, table, sink and reader against the BigQuery emulator."""

from __future__ import annotations

import dataclasses
import datetime
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api_core.exceptions import NotFound
from google.cloud import bigquery

from tests.gcp.conftest import PROJECT, unique
from tests.rows import Label
from tideflow.exceptions import InvalidQueryError, PrimitiveError
from tideflow.home import state_path
from tideflow.io.duckdb import DuckDBDataset, DuckDBTable
from tideflow.io.gcp import BigQueryDataset, BigQueryTable
from tideflow.io.gcp import bigquery as gcp_bigquery
from tideflow.io.primitive import PlanAction
from tideflow.io.strategies import ItemFilter, TableReader

T0 = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.UTC)


@dataclasses.dataclass
class Row:
    image_id: str
    classified_at: datetime.datetime
    labels: list[Label]
    size: int | None = None


ROWS = [
    Row("a", T0, [Label("tabby cat", 0.9), Label("Egyptian cat", 0.05)], 10),
    Row("b", T0 + datetime.timedelta(minutes=1), [Label("espresso", 0.8)], None),
    Row("c", T0 + datetime.timedelta(minutes=2), [Label("Tabby Cat", 0.3)], 30),
    Row("d", T0 + datetime.timedelta(minutes=3), [], 40),
]


@pytest.fixture
def dataset(bigquery_emulator: str) -> BigQueryDataset:
    return BigQueryDataset(project_id=PROJECT, dataset_name=unique("results").replace("-", "_"))


@pytest.fixture
def table(dataset: BigQueryDataset) -> Iterator[BigQueryTable]:
    created = BigQueryTable(dataset, "image_classification").options(schema=Row)
    yield created
    created.destroy()
    dataset.destroy()


def write_all(table: BigQueryTable | DuckDBTable) -> None:
    table.dataset.apply()
    table.apply()
    table.sink().write([(f"photos/{r.image_id}.png#1:0", r) for r in ROWS])


def test_apply_creates_dataset_and_table_and_a_second_apply_changes_nothing(
    table: BigQueryTable,
) -> None:
    dataset = table.dataset
    assert [dataset.plan().action, table.plan().action] == [PlanAction.CREATE] * 2

    assert [dataset.apply().action, table.apply().action] == [PlanAction.CREATE] * 2

    created = dataset.client().get_table(table.table_ref)
    assert [f.name for f in created.schema] == [
        "image_id",
        "classified_at",
        "labels",
        "size",
        "_tideflow_row_id",
    ]
    assert not dataset.apply().changes
    assert not table.apply().changes


def test_a_redelivered_row_reads_back_once(table: BigQueryTable) -> None:
    write_all(table)
    sink = table.sink()
    # The event of row "a" comes back (its ack was lost) and is written again.
    sink.write([("photos/a.png#1:0", ROWS[0])])

    raw = table.dataset.client().query(f"SELECT COUNT(*) FROM `{table.table_ref}`").result()
    assert next(iter(raw))[0] == len(ROWS) + 1  # The emulator ignores insertId...
    reader = table.reader()
    assert reader.count() == len(ROWS)  # ...the reader de-duplicates.
    result = reader.select(order_by="classified_at", limit=10)
    assert result.columns == ["image_id", "classified_at", "labels", "size"]
    assert [r["image_id"] for r in result.records()] == ["d", "c", "b", "a"]
    assert result.records()[3]["labels"] == [
        {"label": "tabby cat", "confidence": 0.9},
        {"label": "Egyptian cat", "confidence": 0.05},
    ]
    assert reader.query(
        "SELECT COUNT(DISTINCT image_id) AS n, COUNT(*) AS m FROM {table}"
    ).rows == [(4, 4)]


def normalised(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC)
    if isinstance(value, list):
        return [normalised(v) for v in value]
    if isinstance(value, dict):
        return {k: normalised(v) for k, v in value.items()}
    return value


def outcome(reader: TableReader, call: str, kwargs: dict[str, Any]) -> Any:
    if call == "count":
        return reader.count(**kwargs)
    result = reader.select(**kwargs)
    return result.columns, [normalised(list(row)) for row in result.rows]


SELECTIONS: list[tuple[str, dict[str, Any]]] = [
    ("select", {"order_by": "classified_at"}),
    ("select", {"order_by": "size", "limit": 2, "offset": 1}),
    ("select", {"where": {"image_id": "b"}}),
    ("select", {"item": ItemFilter("labels", "label", "TABBY CAT"), "order_by": "classified_at"}),
    (
        "select",
        {
            "item": ItemFilter(
                "labels", "label", "tabby cat", score_field="confidence", min_score=0.5
            ),
            "order_by": "classified_at",
        },
    ),
    (
        "select",
        {
            "item": ItemFilter("labels", "label", None, score_field="confidence", min_score=0.7),
            "order_by": "size",
        },
    ),
    ("count", {}),
    ("count", {"item": ItemFilter("labels", "label", "egyptian CAT")}),
    ("count", {"where": {"size": 40}, "item": ItemFilter("labels", "label")}),
]


def test_select_and_count_match_the_duckdb_reader(table: BigQueryTable, tmp_path: Path) -> None:
    duck = DuckDBTable(DuckDBDataset(tmp_path / "same.duckdb"), "image_classification")
    duck.options(schema=Row)
    write_all(duck)
    write_all(table)
    bigquery_reader, duckdb_reader = table.reader(), duck.reader()

    for call, kwargs in SELECTIONS:
        expected = outcome(duckdb_reader, call, kwargs)
        assert outcome(bigquery_reader, call, kwargs) == expected, (call, kwargs)
    duck.dataset.destroy()


def test_query_takes_the_table_and_named_parameters(table: BigQueryTable) -> None:
    write_all(table)

    result = table.reader().query(
        "SELECT image_id FROM {table} WHERE size >= $min AND classified_at > $after "
        "ORDER BY image_id",
        {"min": 20, "after": T0},
    )

    assert result.rows == [("c",), ("d",)]


def test_user_query_reads_one_statement_up_to_a_cap(table: BigQueryTable) -> None:
    write_all(table)
    reader = table.reader()

    capped = reader.user_query("SELECT image_id FROM {table} ORDER BY image_id", max_rows=3)

    assert capped.rows == [("a",), ("b",), ("c",)] and capped.truncated
    assert not reader.user_query("SELECT image_id FROM {table}", max_rows=4).truncated
    # BigQuery has no read-only transaction: the statement check is what refuses.
    for sql in (f"DELETE FROM `{table.table_ref}` WHERE TRUE", "SELECT 1; DROP TABLE x"):
        with pytest.raises(InvalidQueryError):
            reader.user_query(sql)
    assert reader.count() == len(ROWS)


@dataclasses.dataclass
class RankedLabel:
    label: str
    confidence: float
    rank: int | None = None


@dataclasses.dataclass
class RowV2:
    image_id: str
    classified_at: datetime.datetime
    labels: list[RankedLabel]
    size: int | None = None
    model: str | None = None


@dataclasses.dataclass
class RowWithAnotherType:
    image_id: int
    classified_at: datetime.datetime
    labels: list[Label]


def test_new_columns_are_added_and_other_changes_only_reported(table: BigQueryTable) -> None:
    table.dataset.apply()
    table.apply()
    table.options(schema=RowV2)

    step = table.plan()

    assert step.action is PlanAction.UPDATE
    assert step.detail == "add columns: labels.rank, model"
    table.apply()
    schema = table.dataset.client().get_table(table.table_ref).schema
    assert "model" in [f.name for f in schema]
    labels = next(f for f in schema if f.name == "labels")
    assert [f.name for f in labels.fields] == ["label", "confidence", "rank"]
    assert not table.plan().changes

    table.options(schema=RowWithAnotherType)
    step = table.plan()
    assert step.action is PlanAction.NO_CHANGE
    assert "not changed" in step.detail
    assert "image_id is STRING single, the schema says INTEGER single" in step.detail


def test_destroy_removes_the_table_and_only_an_empty_dataset(table: BigQueryTable) -> None:
    write_all(table)
    dataset = table.dataset
    stranger = f"{dataset.dataset_ref}.not_ours"
    dataset.client().create_table(
        bigquery.Table(stranger, schema=[bigquery.SchemaField("x", "STRING")])
    )

    assert table.destroy().action is PlanAction.DELETE
    assert table.destroy().action is PlanAction.NO_CHANGE
    with pytest.raises(PrimitiveError, match="not_ours"):
        dataset.destroy()

    dataset.client().delete_table(stranger)
    assert dataset.destroy().action is PlanAction.DELETE
    assert dataset.plan().action is PlanAction.CREATE
    assert dataset.destroy().action is PlanAction.NO_CHANGE


def test_a_name_destroy_just_deleted_is_not_created_again_at_once(
    table: BigQueryTable,
) -> None:
    # 4b: streaming inserts can still go to the deleted table for minutes: rows lost.
    write_all(table)
    assert table.destroy().action is PlanAction.DELETE
    with pytest.raises(PrimitiveError, match=r"was deleted \d+s ago by `tideflow destroy`"):
        table.apply()
    assert table.plan().action is PlanAction.CREATE  # nothing was created
    other = BigQueryTable(table.dataset, "image_classification_v2").options(schema=Row)
    assert other.apply().action is PlanAction.CREATE  # another name is fine
    other.destroy()
    # Once the wait is over (the note says it was deleted long enough ago), it is free.
    long_ago = time.time() - gcp_bigquery.RECREATE_AFTER_SECONDS - 1
    state_path(gcp_bigquery.DELETED_TABLES_FILE).write_text(json.dumps({table.table_ref: long_ago}))
    assert table.apply().action is PlanAction.CREATE


def test_tables_are_partitioned_by_their_time_column_and_clustered_by_ids(
    table: BigQueryTable,
) -> None:
    # 4f: a status poll then scans one image's cluster, not the whole table.
    table.dataset.apply()
    assert "partitioned by day on classified_at, clustered by image_id" in table.plan().detail
    table.apply()

    found = table.dataset.client().get_table(table.table_ref)
    assert found.time_partitioning is not None
    assert (found.time_partitioning.type_, found.time_partitioning.field) == (
        "DAY",
        "classified_at",
    )
    assert found.clustering_fields == ["image_id"]
    assert not table.plan().changes

    failures = table.failure_table
    assert (failures.partitioning().field, failures.clustering()) == ("event_time", ["event_id"])
    other = BigQueryTable(table.dataset, table.table_name).options(
        schema=Row, partition_by=None, cluster_by=["image_id", "size"]
    )
    assert "set at creation only" in other.plan().detail


def test_a_dataset_in_another_location_is_reported_and_followed(
    dataset: BigQueryDataset,
) -> None:
    # 4j: an EU dataset used to pass plan, then every query named location US and failed.
    existing = bigquery.Dataset(dataset.dataset_ref)
    existing.location = "EU"
    dataset.client().create_dataset(existing)
    try:
        step = dataset.plan()
        assert step.action is PlanAction.NO_CHANGE
        assert "is in EU, not US" in step.detail
        assert dataset.location == "EU"
        table = BigQueryTable(dataset, "rows").options(schema=Row)
        assert table.reader().location == "EU"
    finally:
        dataset.destroy()


class LaggingStreaming:
    """insertAll as BigQuery answers right after a table is created, then altered."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.probes: list[dict[str, Any]] = []

    def insert_rows_json(self, table: str, rows: list[dict[str, Any]], **_: Any) -> Any:
        self.probes.append(rows[0])
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_apply_waits_until_streaming_inserts_see_the_new_table_and_columns(
    dataset: BigQueryDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4b: streaming answers 404, then refuses the new column, then knows the table. The
    # probe's row id is not a string, so real BigQuery stores nothing.
    monkeypatch.delenv("BIGQUERY_EMULATOR_HOST")
    refused_id = [{"index": 0, "errors": [{"reason": "invalid", "message": "not a record"}]}]
    no_field = [{"index": 0, "errors": [{"reason": "invalid", "message": "no such field: size."}]}]
    stub = LaggingStreaming([NotFound("Table not found"), no_field, refused_id])
    table = BigQueryTable(dataset, "rows").options(schema=Row)
    monkeypatch.setattr(dataset, "client", lambda: stub)
    slept: list[float] = []

    table.await_streaming(["size"], sleep=slept.append)

    assert slept == [1.0, 2.0]
    assert stub.probes[0]["size"] is None
    assert not isinstance(stub.probes[0]["_tideflow_row_id"], str)

    stub.answers = [NotFound("Table not found")] * 20
    with pytest.raises(PrimitiveError, match="deleted in the last minutes"):
        table.await_streaming(["size"], sleep=lambda _: None, timeout=10)
