"""DuckDB's side of the item index (``tideflow.io.item_index``): its table, inserts and
back-fill."""

from __future__ import annotations

from collections.abc import Callable

from tideflow.io.item_index import BEST, FIRST, KEY, ORDER, POSITION, ItemIndex
from tideflow.io.schema import ROW_ID_COLUMN, Field, Kind
from tideflow.io.sql import quote


def create_sql(index: ItemIndex, column_type: Callable[[Field], str]) -> str:
    columns = [
        f"{quote(ROW_ID_COLUMN)} VARCHAR NOT NULL",
        f"{POSITION} INTEGER NOT NULL",
        f"{BEST} BOOLEAN NOT NULL",
        f"{FIRST} BOOLEAN NOT NULL",
        f"{ORDER} TIMESTAMPTZ",
        *(f"{quote(f.name)} {column_type(f)}" for f in index.fields),
        f"{KEY} UBIGINT NOT NULL",  # hash of the row id: counting distinct rows is cheaper
    ]
    return f"CREATE TABLE IF NOT EXISTS {quote(index.name)} ({', '.join(columns)})"


def insert_sql(index: ItemIndex, count: int) -> str:
    """``count`` rows of ``ItemIndex.rows`` (the last value, the row id, is hashed)."""
    marks = "(" + ", ".join("?" * (5 + len(index.fields))) + ", hash(?))"
    return f"INSERT INTO {quote(index.name)} VALUES {', '.join([marks] * count)}"


def backfill_sql(index: ItemIndex) -> str:
    """Items of the table's rows that the side table does not have yet."""
    column = quote(index.column)
    values = ", ".join(
        f"lower(_item.{quote(f.name)})" if f.kind is Kind.STRING else f"_item.{quote(f.name)}"
        for f in index.fields
    )
    if index.score:
        scores = f"[_x.{quote(index.score)} for _x in {column}]"
        best = f"_pos = list_position({scores}, list_max({scores}))"
    else:
        best = "_pos = 1"
    if index.text:
        # The best-scoring (then first) item among the row's items with the same text.
        score = f"_item.{quote(index.score)} DESC NULLS LAST, " if index.score else ""
        first = (
            f"row_number() OVER (PARTITION BY {quote(ROW_ID_COLUMN)}, "
            f"lower(_item.{quote(index.text)}) ORDER BY {score}_pos) = 1"
        )
    else:
        first = "true"
    return (
        f"INSERT INTO {quote(index.name)} "
        f"SELECT {quote(ROW_ID_COLUMN)}, _pos, {best}, {first}, {quote(index.order_by)}, "
        f"{values}, hash({quote(ROW_ID_COLUMN)}) "
        f"FROM (SELECT *, unnest({column}) AS _item, "
        f"generate_subscripts({column}, 1) AS _pos FROM {quote(index.table)} "
        f"WHERE {quote(ROW_ID_COLUMN)} NOT IN "
        f"(SELECT {quote(ROW_ID_COLUMN)} FROM {quote(index.name)})) "
        # Stored in time order, as the sink appends: newest-first pages then skip
        # most row groups by their min/max timestamps.
        f"ORDER BY {quote(index.order_by)}, {quote(ROW_ID_COLUMN)}, _pos"
    )
