"""PostgreSQL's item index answers item filters exactly as scanning the lists does."""

from __future__ import annotations

import dataclasses

import pytest
from psycopg.types.json import Jsonb

from tests.tideflow.test_item_index import (
    FILTERS,
    Row,
    _rows,
    assert_index_matches_scan,
    write_with_redeliveries,
)
from tideflow.io.postgres import PostgresDatabase, PostgresTable
from tideflow.io.postgres.table import PostgresReader
from tideflow.io.strategies import ItemFilter


@pytest.fixture
def table(postgres_url: str) -> PostgresTable:
    table = PostgresTable(PostgresDatabase(postgres_url), "rows").options(schema=Row)
    table.apply()
    return table


def scanning(table: PostgresTable) -> PostgresReader:
    """A reader of the same table that filters the lists themselves."""
    reader = table.reader()
    reader.indexes = []
    return reader


@pytest.mark.parametrize("item", [*FILTERS, None], ids=repr)
def test_index_matches_the_scan(
    table: PostgresTable, item: ItemFilter | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_with_redeliveries(table.sink())
    assert_index_matches_scan(table.reader(), scanning(table), item, monkeypatch)


def test_a_refused_row_gets_no_index_rows_and_the_others_do(table: PostgresTable) -> None:
    rows = _rows(5, seed=3)
    bad = (rows[2][0], Row("bad\x00name", rows[2][1].labels, rows[2][1].at))  # NUL: refused
    with pytest.raises(Exception, match="refused 1 of 5"):
        table.sink().write([*rows[:2], bad, *rows[3:]])
    indexed, scanned = table.reader(), scanning(table)
    for item in FILTERS:
        assert indexed.count(item=item) == scanned.count(item=item), item


def test_apply_backfills_the_index_of_an_existing_table(table: PostgresTable) -> None:
    table.sink().write(_rows(50, seed=2))
    (index,) = table.item_indexes()
    with table.database.connection() as conn:
        conn.execute(f'DROP TABLE "{index.name}"')
        conn.commit()
    assert "add item index" in (table.plan().detail or "")
    table.apply()
    assert table.plan().detail in (None, "")
    with table.database.connection() as conn:
        # Vacuumed and analysed: counts are index-only scans straight away.
        vacuumed = conn.execute(
            "SELECT last_vacuum IS NOT NULL AND last_analyze IS NOT NULL "
            "FROM pg_stat_user_tables WHERE relname = %s",
            [index.name],
        ).fetchone()
    assert vacuumed == (True,)
    indexed, scanned = table.reader(), scanning(table)
    for item in FILTERS:
        assert indexed.count(item=item) == scanned.count(item=item), item
        assert indexed.select(item=item, order_by="at").rows == (
            scanned.select(item=item, order_by="at").rows
        ), item


def test_every_apply_indexes_rows_an_older_consumer_wrote(table: PostgresTable) -> None:
    """A rolling upgrade: the index exists, but consumers of the release before it still
    write rows without entries; the next apply gives them theirs, once."""
    table.sink().write(_rows(20, seed=4))
    older = _rows(40, seed=5)[20:]
    with table.database.connection() as conn:  # what a consumer without the index writes
        for row_id, row in older:
            conn.execute(
                'INSERT INTO "rows" (name, labels, at, _tideflow_row_id) VALUES (%s, %s, %s, %s)',
                [row.name, Jsonb([dataclasses.asdict(x) for x in row.labels]), row.at, row_id],
            )
        conn.commit()
    assert table.plan().detail in (None, "")  # the side table exists: nothing to plan
    indexed, scanned = table.reader(), scanning(table)
    assert any(indexed.count(item=i) != scanned.count(item=i) for i in FILTERS)
    table.apply()
    table.apply()  # a second apply finds nothing left to index
    for item in FILTERS:
        assert indexed.count(item=item) == scanned.count(item=item), item


def test_contains_filters_have_a_trigram_index(table: PostgresTable) -> None:
    (index,) = table.item_indexes()
    with table.database.connection() as conn:
        found = conn.execute("SELECT to_regclass(%s)", [f'"{index.name}_trgm"']).fetchone()
    assert found is not None and found[0] is not None


def test_destroy_drops_the_index_too(table: PostgresTable) -> None:
    (index,) = table.item_indexes()
    table.destroy()
    with table.database.connection() as conn:
        left = conn.execute("SELECT to_regclass(%s)", [f'"{index.name}"']).fetchone()
    assert left == (None,)


def test_newest_first_pages_have_an_index_on_the_time_column(table: PostgresTable) -> None:
    with table.database.connection() as conn:
        conn.execute('DROP INDEX "rows__by_at"')
        conn.commit()
    assert table.plan().detail == "add index on at"
    table.apply()
    assert table.plan().detail in (None, "")
    with table.database.connection() as conn:
        plan = conn.execute('EXPLAIN SELECT * FROM "rows" ORDER BY "at" DESC LIMIT 50').fetchall()
    assert "rows__by_at" in " ".join(row[0] for row in plan)
