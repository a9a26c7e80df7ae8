"""PostgreSQL's side of the item index (``tideflow.io.item_index``): its table, indexes,
inserts and back-fill.

The B-trees follow the filters: an exact text with its timestamp (newest-first pages of
a label), the timestamp alone (pages of "contains" filters walk it newest first) and the
best items' timestamp and score ("any item scores >= x": pages and counts); a trigram
index finds the items whose text contains a string.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg

from tideflow.io.item_index import BEST, FIRST, KEY, ORDER, POSITION, ItemIndex
from tideflow.io.schema import ROW_ID_COLUMN, Field
from tideflow.io.sql import quote

_BACKFILL_BATCH = 1000
logger = logging.getLogger("tideflow.postgres")


def _index_name(index: ItemIndex, suffix: str) -> str:
    """PostgreSQL cuts names at 63 bytes: the side table's name, shortened, + ``suffix``."""
    return quote(index.name[:55] + suffix)


def create(
    conn: psycopg.Connection[Any], index: ItemIndex, column_type: Callable[[Field], str]
) -> None:
    """The side table and its indexes, in the caller's transaction; with the pg_trgm
    extension (a trusted one: a database owner may create it), a trigram index that serves
    "contains" filters. Without it those filters read the whole side table."""
    for statement in create_sql(index, column_type):
        conn.execute(statement)
    if index.text is None:
        return
    try:
        with conn.transaction():  # a savepoint: a refusal leaves the rest standing
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {_index_name(index, '_trgm')} "
                f"ON {quote(index.name)} USING gin ({quote(index.text)} gin_trgm_ops)"
            )
    except psycopg.Error as exc:
        logger.warning(
            "%s: no trigram index (%s); label 'contains' filters scan the item index",
            index.name,
            " ".join(str(exc).split()),
        )


def create_sql(index: ItemIndex, column_type: Callable[[Field], str]) -> list[str]:
    """The side table and its B-trees."""
    name = quote(index.name)
    columns = [
        f"{quote(ROW_ID_COLUMN)} text NOT NULL",
        f"{POSITION} integer NOT NULL",
        f"{BEST} boolean NOT NULL",
        f"{FIRST} boolean NOT NULL",
        f"{ORDER} timestamptz",
        *(f"{quote(f.name)} {column_type(f)}" for f in index.fields),
        f"{KEY} bigint NOT NULL",
    ]
    statements = [
        f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(columns)})",
        f"CREATE INDEX IF NOT EXISTS {_index_name(index, '_row')} "
        f"ON {name} ({quote(ROW_ID_COLUMN)})",
        f"CREATE INDEX IF NOT EXISTS {_index_name(index, '_order')} ON {name} ({ORDER})",
    ]
    if index.text:
        # Exact-text filters test _first too (one item per row): pages and counts of a
        # label read only this index's entries for it.
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {_index_name(index, '_text')} "
            f"ON {name} ({quote(index.text)}, {ORDER}) WHERE {FIRST}"
        )
    if index.score:
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {_index_name(index, '_best')} "
            f"ON {name} ({ORDER}) WHERE {BEST}"
        )
        statements.append(
            f"CREATE INDEX IF NOT EXISTS {_index_name(index, '_score')} "
            f"ON {name} ({quote(index.score)}) WHERE {BEST}"
        )
    return statements


def insert_sql(index: ItemIndex, count: int) -> str:
    """``count`` rows of ``ItemIndex.rows`` (the last value, the row id, is hashed)."""
    marks = "(" + ", ".join(["%s"] * (5 + len(index.fields))) + ", hashtextextended(%s, 0))"
    return f"INSERT INTO {quote(index.name)} VALUES {', '.join([marks] * count)}"


def insert_items(
    conn: psycopg.Connection[Any],
    index: ItemIndex,
    rows: list[tuple[str, dict[str, Any]]],
) -> None:
    """The index rows of ``rows`` (row id, ``row_values``), in the caller's transaction."""
    items = [item for row_id, values in rows for item in index.rows(row_id, values)]
    for start in range(0, len(items), _BACKFILL_BATCH):
        batch = items[start : start + _BACKFILL_BATCH]
        conn.execute(insert_sql(index, len(batch)), [v for item in batch for v in item])


def backfill(conn: psycopg.Connection[Any], index: ItemIndex) -> int:
    """Index rows for the table's rows that have none yet (a table made before the index,
    rows written by an older consumer), computed by ``ItemIndex.rows`` like the sink's,
    read through a server-side cursor; how many table rows got them."""
    row_id, column, order_by = quote(ROW_ID_COLUMN), quote(index.column), quote(index.order_by)
    with conn.cursor(name="tideflow_item_backfill") as cursor:
        cursor.execute(
            f"SELECT {row_id}, {column}, {order_by} FROM {quote(index.table)} AS t "
            f"WHERE NOT EXISTS (SELECT 1 FROM {quote(index.name)} AS i "
            f"WHERE i.{row_id} = t.{row_id})"
        )
        added = 0
        while batch := cursor.fetchmany(_BACKFILL_BATCH):
            rows = [
                (found[0], {index.column: found[1], index.order_by: found[2]}) for found in batch
            ]
            insert_items(conn, index, rows)
            added += len(rows)
    return added
