"""The DuckDB item index answers item filters exactly as scanning the lists does."""

from __future__ import annotations

import datetime
import random

import pytest

from tests.rows import Label, Row
from tideflow.io import sql
from tideflow.io.duckdb import DuckDBTable
from tideflow.io.duckdb.warehouse import DuckDBReader
from tideflow.io.sql import SqlTableReader
from tideflow.io.strategies import ItemFilter, Sink

# "Tabby" and "tabby" in one row: the same label twice, as far as filters are concerned.
WORDS = ["tabby cat", "tiger cat", "Egyptian cat", "catamaran", "dog", "Tabby", "tabby", "hat"]


def _rows(count: int, seed: int) -> list[tuple[str, Row]]:
    rng = random.Random(seed)
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    rows = []
    for i in range(count):
        labels = [Label(w, round(rng.random(), 3)) for w in rng.sample(WORDS, rng.randint(0, 4))]
        rows.append((f"id-{i}", Row(f"row-{i}", labels, start + datetime.timedelta(seconds=i))))
    return rows


FILTERS = [
    ItemFilter("labels", "label", value="tabby cat"),
    ItemFilter("labels", "label", value="TABBY"),
    ItemFilter("labels", "label", value="tabby", score_field="confidence", min_score=0.4),
    ItemFilter("labels", "label", value="cat", contains=True),
    ItemFilter(
        "labels", "label", value="CAT", contains=True, score_field="confidence", min_score=0.5
    ),
    ItemFilter("labels", "label", score_field="confidence", min_score=0.7),
    ItemFilter("labels", "label", value="dog", score_field="confidence", min_score=0.2),
    ItemFilter("labels", "label", value="nothing", contains=True),
    # LIKE's wildcards are plain text in a search: "t_b" is not "tab", "%" is not anything.
    ItemFilter("labels", "label", value="T_B", contains=True),
    ItemFilter("labels", "label", value="%", contains=True),
]


def write_with_redeliveries(sink: Sink) -> None:
    """300 rows, 50 of them written twice, and one new event twice in one batch: each must
    end up with one row and one set of index entries."""
    rows = _rows(300, seed=1)
    sink.write(rows[:200])
    sink.write(rows[150:])
    newcomer = _rows(301, seed=9)[300]
    sink.write([newcomer, newcomer])


def assert_index_matches_scan(
    indexed: SqlTableReader,
    scanned: SqlTableReader,
    item: ItemFilter | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``indexed`` (with item indexes) counts and pages like ``scanned`` (without)."""
    assert indexed.indexes, "the table has a list of records and a timestamp: it is indexed"
    total = scanned.count(item=item)
    assert indexed.count(item=item) == total
    everything = scanned.select(item=item, order_by="at", limit=1000).records()
    assert len(everything) == total
    # Deep pages are read from the other end: make "deep" small enough to be tested here.
    monkeypatch.setattr(sql, "FLIP_OFFSET", 20)
    # And pages past 40 grouped in SQL instead of de-duplicated in Python.
    monkeypatch.setattr(sql, "DEDUPE_UP_TO", 40)
    offsets = {0, 7, 25, 60, 90, total - 10, total - 1, total, total + 5}
    for offset in sorted(o for o in offsets if o >= 0):
        by_index = indexed.select(item=item, order_by="at", limit=25, offset=offset).records()
        assert [r["name"] for r in by_index] == [
            r["name"] for r in everything[offset : offset + 25]
        ], offset
        by_scan = scanned.select(item=item, order_by="at", limit=25, offset=offset).records()
        assert by_scan == by_index


@pytest.mark.parametrize("item", [*FILTERS, None], ids=repr)
def test_index_matches_the_scan(
    table: DuckDBTable, item: ItemFilter | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_with_redeliveries(table.sink())
    indexed = table.reader()
    scanned = DuckDBReader(table.dataset, table_ref=indexed.table_ref)
    assert_index_matches_scan(indexed, scanned, item, monkeypatch)


def test_apply_backfills_the_index_of_an_existing_table(table: DuckDBTable) -> None:
    table.sink().write(_rows(50, seed=2))
    cursor = table.dataset.connection().cursor()
    (index,) = table.item_indexes()
    cursor.execute(f'DROP TABLE "{index.name}"')
    assert "add item index" in (table.plan().detail or "")
    table.apply()
    assert table.plan().detail in (None, "")
    scanned = DuckDBReader(table.dataset, table_ref=table.reader().table_ref)
    for item in FILTERS:
        assert table.reader().count(item=item) == scanned.count(item=item), item
        assert table.reader().select(item=item, order_by="at").rows == (
            scanned.select(item=item, order_by="at").rows
        ), item
