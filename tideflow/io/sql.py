"""``select``/``count`` for SQL warehouses, written once; each adapter names its dialect.

Adapters subclass ``SqlTableReader``, implement ``query`` (``{table}`` and ``$name``
placeholders) and give a ``SqlDialect``: how to quote a name, drop a column from ``*``
and unnest a list column into rows called ``_item``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from tideflow.io.schema import ROW_ID_COLUMN
from tideflow.io.strategies import ItemFilter, TableReader, check_paging
from tideflow.types import QueryResult


@dataclasses.dataclass(frozen=True)
class SqlDialect:
    quote: Callable[[str], str]
    all_but: Callable[[str], str]  # quoted column -> "* without it"
    unnest_items: Callable[[str], str]  # quoted list column -> FROM clause naming `_item`
    name: str = "sql"  # "duckdb", "bigquery"...: for apps that write the warehouse's own SQL


class SqlTableReader(TableReader):
    dialect: SqlDialect

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
        sql, params = self.select_sql(where=where, item=item, order_by=order_by)
        return self.query(f"{sql} LIMIT {int(limit)} OFFSET {int(offset)}", params)

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
        condition, params = self._condition(where, item)
        return int(self.query(f"SELECT COUNT(*) FROM {{table}}{condition}", params).rows[0][0])

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
