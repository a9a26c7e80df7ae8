"""``select``/``count`` for SQL warehouses, written once; each adapter names its dialect.

Adapters subclass ``SqlTableReader``, implement ``query`` (``{table}`` and ``$name``
placeholders) and give a ``SqlDialect``: how to quote a name, drop a column from ``*``
and unnest a list column into rows called ``_item``. An adapter that keeps item indexes
(``tideflow.io.item_index``) lists them in ``indexes``: item filters then pick a page's
row ids from the side table and read only those rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from tideflow.io.item_index import ItemIndex
from tideflow.io.schema import ROW_ID_COLUMN
from tideflow.io.strategies import ItemFilter, TableReader, check_paging
from tideflow.types import QueryResult

# From this offset on, a page past the middle is read from the other end.
FLIP_OFFSET = 10_000
# Pages of filters a row can match several times (label contains...) up to this far are
# de-duplicated in Python from a sorted read; deeper ones are grouped in SQL.
DEDUPE_UP_TO = 2_000


@dataclasses.dataclass(frozen=True)
class SqlDialect:
    quote: Callable[[str], str]
    all_but: Callable[[str], str]  # quoted column -> "* without it"
    unnest_items: Callable[[str], str]  # quoted list column -> FROM clause naming `_item`
    name: str = "sql"  # "duckdb", "bigquery"...: for apps that write the warehouse's own SQL


class SqlTableReader(TableReader):
    dialect: SqlDialect
    indexes: Sequence[ItemIndex] = ()  # adapters that keep item indexes list theirs
    contains_like = False  # "contains" filters on an index as LIKE (for a trigram index)

    def _index_for(self, item: ItemFilter | None, order_by: str | None) -> ItemIndex | None:
        if item is None:
            return None
        return next((i for i in self.indexes if i.usable_for(item, order_by)), None)

    def select(
        self,
        *,
        where: dict[str, Any] | None = None,
        item: ItemFilter | None = None,
        order_by: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> QueryResult:
        check_paging(limit, offset)
        index = None if where else self._index_for(item, order_by)
        ascending = False
        if order_by and offset >= FLIP_OFFSET:
            # Deep pages: the page counted from the other end needs a small sort, not one
            # of offset + limit rows.
            total = self.count(where=where, item=item)
            if offset >= total:
                limit, offset = 0, 0
            elif offset > total // 2:
                ascending = True
                end = min(total, offset + limit)
                limit, offset = end - offset, total - end
        if index is None or item is None:
            sql, params = self.select_sql(
                where=where, item=item, order_by=order_by, ascending=ascending
            )
            found = self.query(f"{sql} LIMIT {int(limit)} OFFSET {int(offset)}", params)
        else:
            # The page's row ids come from the item index; then only those rows are read
            # (an IN list of ids is a point lookup; a join would scan the whole table).
            matching, params, several = index.matching_ids_sql(item, like=self.contains_like)
            direction = "ASC" if ascending else "DESC"
            ids = self._page_ids(matching, params, several, direction, limit, offset)
            row_id = self.dialect.quote(ROW_ID_COLUMN)
            columns = self.dialect.all_but(row_id)
            rows = self.query(
                f"SELECT {row_id} AS _id, {columns} FROM {{table}} "
                # Typed, so that an empty page is a valid array on every warehouse.
                f"WHERE {row_id} IN (SELECT unnest(CAST($ids AS TEXT[])))",
                {"ids": ids},
            )
            by_id = {row[0]: row[1:] for row in rows.rows}
            found = QueryResult(
                columns=rows.columns[1:], rows=[by_id[i] for i in ids if i in by_id]
            )
        if ascending:
            return QueryResult(columns=found.columns, rows=found.rows[::-1])
        return found

    def _page_ids(
        self,
        matching: str,
        params: dict[str, Any],
        several: bool,
        direction: str,
        limit: int,
        offset: int,
    ) -> list[str]:
        """Row ids of a page, from the item index rows ``matching`` selects.

        When a row can match through several items, near pages are read in index order
        and de-duplicated here (a small sorted read); deeper ones are grouped by row.
        """
        order = f"ORDER BY _o {direction}, _id {direction}"
        if not several:
            sql = f"{matching} {order} LIMIT {int(limit)} OFFSET {int(offset)}"
            return [row[0] for row in self.query(sql, params).rows]
        wanted = offset + limit
        fetch = wanted * 2 + 10
        while wanted <= DEDUPE_UP_TO and fetch <= DEDUPE_UP_TO * 16:
            rows = self.query(f"{matching} {order} LIMIT {fetch}", params).rows
            ids = list(dict.fromkeys(row[0] for row in rows))
            if len(ids) >= wanted or len(rows) < fetch:
                return ids[offset:wanted]
            fetch *= 4
        grouped = f"SELECT min(_id) AS _id, max(_o) AS _o FROM ({matching}) AS _m GROUP BY _k"
        sql = f"{grouped} {order} LIMIT {int(limit)} OFFSET {int(offset)}"
        return [row[0] for row in self.query(sql, params).rows]

    def select_sql(
        self,
        *,
        where: dict[str, Any] | None = None,
        item: ItemFilter | None = None,
        order_by: str | None = None,
        columns: str | None = None,
        ascending: bool = False,
    ) -> tuple[str, dict[str, Any]]:
        """``select``'s query without its LIMIT, and its parameters."""
        quote = self.dialect.quote
        condition, params = self._condition(where, item)
        direction = "ASC" if ascending else "DESC"
        order = f" ORDER BY {quote(order_by)} {direction}" if order_by else ""
        columns = columns or self.dialect.all_but(quote(ROW_ID_COLUMN))
        return f"SELECT {columns} FROM {{table}}{condition}{order}", params

    def count(self, *, where: dict[str, Any] | None = None, item: ItemFilter | None = None) -> int:
        index = None
        if item is not None and not where:
            index = next((i for i in self.indexes if i.usable_for(item, i.order_by)), None)
        if index is None or item is None:
            condition, params = self._condition(where, item)
            return int(self.query(f"SELECT COUNT(*) FROM {{table}}{condition}", params).rows[0][0])
        matching, params, several = index.matching_ids_sql(item, like=self.contains_like)
        counted = "COUNT(DISTINCT _k)" if several else "COUNT(*)"
        return int(self.query(f"SELECT {counted} FROM ({matching}) AS _m", params).rows[0][0])

    def _condition(
        self, where: dict[str, Any] | None, item: ItemFilter | None
    ) -> tuple[str, dict[str, Any]]:
        quote = self.dialect.quote
        clauses: list[str] = []
        params: dict[str, Any] = {}
        for i, (column, value) in enumerate((where or {}).items()):
            clauses.append(f"{quote(column)} = $w{i}")
            params[f"w{i}"] = value
        if item is not None:
            tests = ["TRUE"]
            if item.value is not None:
                field = f"LOWER(_item.{quote(item.field)})"
                # STRPOS is the same in DuckDB, BigQuery and PostgreSQL, and needs no
                # escaping of LIKE's wildcards.
                test = (
                    f"STRPOS({field}, LOWER($item_value)) > 0"
                    if item.contains
                    else f"{field} = LOWER($item_value)"
                )
                tests.append(test)
                params["item_value"] = item.value
            if item.score_field is not None and item.min_score is not None:
                tests.append(f"_item.{quote(item.score_field)} >= $item_score")
                params["item_score"] = item.min_score
            clauses.append(
                f"EXISTS (SELECT 1 FROM {self.dialect.unnest_items(quote(item.column))} "
                f"WHERE {' AND '.join(tests)})"
            )
        return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params
