"""BigQuery schemas from dataclasses, schema merging, and the SQL the reader sends."""

from __future__ import annotations

import dataclasses
import datetime
import decimal

import pytest
from google.cloud import bigquery

from tests.rows import Label
from tideflow.exceptions import ReadError
from tideflow.io.gcp.bigquery import merge_schema, table_schema
from tideflow.io.gcp.bigquery_io import (
    BigQueryReader,
    _placeholders,
    insert_id,
    json_value,
    parameter,
)
from tideflow.io.schema import schema_of


@dataclasses.dataclass
class Row:
    image_id: str
    size: int | None
    ok: bool
    thumbnail: bytes
    taken_on: datetime.date
    classified_at: datetime.datetime
    labels: list[Label]
    tags: list[str]


def shape(fields: list[bigquery.SchemaField]) -> list[tuple[object, ...]]:
    return [(f.name, f.field_type, f.mode, shape(list(f.fields))) for f in fields]


def test_dataclass_fields_map_to_bigquery_types_with_the_row_id_column() -> None:
    assert shape(table_schema(schema_of(Row))) == [
        ("image_id", "STRING", "NULLABLE", []),
        ("size", "INTEGER", "NULLABLE", []),
        ("ok", "BOOLEAN", "NULLABLE", []),
        ("thumbnail", "BYTES", "NULLABLE", []),
        ("taken_on", "DATE", "NULLABLE", []),
        ("classified_at", "TIMESTAMP", "NULLABLE", []),
        (
            "labels",
            "RECORD",
            "REPEATED",
            [("label", "STRING", "NULLABLE", []), ("confidence", "FLOAT", "NULLABLE", [])],
        ),
        ("tags", "STRING", "REPEATED", []),
        ("_tideflow_row_id", "STRING", "REQUIRED", []),
    ]


def test_merging_adds_columns_and_record_fields_and_reports_conflicts() -> None:
    existing = [
        bigquery.SchemaField("image_id", "STRING"),
        bigquery.SchemaField("size", "FLOAT64"),
        bigquery.SchemaField(
            "Labels", "RECORD", mode="REPEATED", fields=[bigquery.SchemaField("label", "STRING")]
        ),
        bigquery.SchemaField("legacy", "STRING"),
    ]
    wanted = table_schema(schema_of(Row))

    merged, added, conflicts = merge_schema(existing, wanted)

    assert added == [
        "ok",
        "thumbnail",
        "taken_on",
        "classified_at",
        "labels.confidence",
        "tags",
        "_tideflow_row_id",
    ]
    assert conflicts == ["size is FLOAT single, the schema says INTEGER single"]
    names = [f.name for f in merged]
    assert names[:4] == ["image_id", "size", "Labels", "legacy"]
    assert [f.name for f in merged[2].fields] == ["label", "confidence"]
    assert merged[-1].mode == "NULLABLE"  # A REQUIRED column cannot be added later.
    assert merge_schema(merged, wanted)[1] == []


def test_type_synonyms_are_not_conflicts() -> None:
    existing = [bigquery.SchemaField("n", "INT64"), bigquery.SchemaField("b", "BOOL")]
    wanted = [bigquery.SchemaField("n", "INTEGER"), bigquery.SchemaField("b", "BOOLEAN")]
    assert merge_schema(existing, wanted)[1:] == ([], [])


def test_placeholders_become_query_parameters_outside_strings_and_comments() -> None:
    sql = "SELECT '$keep', `$col`, \"$also\" FROM t WHERE a = $a -- $comment\nAND b = $b_2"
    assert _placeholders(sql) == (
        "SELECT '$keep', `$col`, \"$also\" FROM t WHERE a = @a -- $comment\nAND b = @b_2"
    )


def rows_where(condition: str) -> str:
    return (
        f"(SELECT * FROM `p.d.t` WHERE {condition}\n"
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY `_tideflow_row_id`) = 1)"
    )


NESTED = "id IN (SELECT id FROM " + rows_where("x = 1") + " GROUP BY id)"


@pytest.mark.parametrize(
    ("sql", "expanded"),
    [
        # The WHERE that follows {table} filters the table before the copies are dropped.
        (
            "SELECT a FROM {table} WHERE image_id = $w0 ORDER BY a DESC LIMIT 20",
            "SELECT a FROM " + rows_where("image_id = $w0") + " ORDER BY a DESC LIMIT 20",
        ),
        ("SELECT COUNT(*) FROM {table}", "SELECT COUNT(*) FROM " + rows_where("TRUE")),
        # It ends at the parenthesis that closes an enclosing subquery, or at GROUP BY...
        (
            "SELECT n FROM (SELECT x FROM {table} WHERE up >= $since AND c IS NOT NULL) AS r",
            "SELECT n FROM (SELECT x FROM "
            + rows_where("up >= $since AND c IS NOT NULL")
            + ") AS r",
        ),
        (
            "SELECT k, COUNT(*) FROM {table} where (a OR b) AND k IN (1, 2) GROUP BY k",
            "SELECT k, COUNT(*) FROM " + rows_where("(a OR b) AND k IN (1, 2)") + " GROUP BY k",
        ),
        # ... never at a keyword inside a string, a quoted name or a comment ...
        (
            "SELECT 1 FROM {table} WHERE s = ') ORDER' AND `group` = 1 -- LIMIT\nLIMIT 1",
            "SELECT 1 FROM " + rows_where("s = ') ORDER' AND `group` = 1 -- LIMIT") + "\nLIMIT 1",
        ),
        # ... and a {table} inside the condition is expanded too.
        (
            "SELECT 1 FROM {table} WHERE id IN (SELECT id FROM {table} WHERE x = 1 GROUP BY id)",
            "SELECT 1 FROM " + rows_where(NESTED),
        ),
        # An alias before the WHERE: the condition cannot move; the whole table is read.
        (
            "SELECT 1 FROM {table} AS t WHERE t.x = 1",
            "SELECT 1 FROM " + rows_where("TRUE") + " AS t WHERE t.x = 1",
        ),
    ],
)
def test_reads_filter_the_table_before_dropping_duplicates(sql: str, expanded: str) -> None:
    # G3: a filter outside ROW_NUMBER() OVER (PARTITION BY the row id) prunes nothing.
    reader = BigQueryReader(bigquery.Client, table_ref="p.d.t", location=lambda: "US")
    assert reader.expand(sql) == expanded


def test_python_values_map_to_query_parameter_types() -> None:
    moment = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cases = {
        "s": ("x", "STRING"),
        "i": (3, "INT64"),
        "f": (0.5, "FLOAT64"),
        "b": (True, "BOOL"),
        "t": (moment, "TIMESTAMP"),
        "d": (datetime.date(2026, 1, 1), "DATE"),
        "n": (decimal.Decimal("1.5"), "NUMERIC"),
        "y": (b"\x00", "BYTES"),
        "none": (None, "STRING"),
    }
    for name, (value, kind) in cases.items():
        made = parameter(name, value)
        assert isinstance(made, bigquery.ScalarQueryParameter)
        assert (made.name, made.type_, made.value) == (name, kind, value)
    array = parameter("ids", ["a", "b"])
    assert isinstance(array, bigquery.ArrayQueryParameter)
    assert (array.array_type, array.values) == ("STRING", ["a", "b"])
    with pytest.raises(ReadError, match="mixes"):
        parameter("bad", [1, "a"])
    with pytest.raises(ReadError, match="dict"):
        parameter("bad", {"a": 1})


def test_row_values_are_sent_as_insert_all_json() -> None:
    naive = datetime.datetime(2026, 1, 2, 3, 4, 5)
    assert json_value({"at": naive, "raw": b"\x01", "list": [datetime.date(2026, 1, 2)]}) == {
        "at": "2026-01-02T03:04:05+00:00",
        "raw": "AQ==",
        "list": ["2026-01-02"],
    }


def test_long_row_ids_are_hashed_into_insert_ids() -> None:
    assert insert_id("b/k#1:0") == "b/k#1:0"
    long_id = "b/" + "k" * 300 + "#1:0"
    hashed = insert_id(long_id)
    assert hashed.startswith("sha256:")
    assert len(hashed) <= 128
    assert insert_id(long_id) == hashed
