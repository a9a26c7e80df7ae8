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
from tideflow.io.strategies import ItemFilter, TableReader
from tideflow.types import QueryResult


@dataclasses.dataclass(frozen=True)
class SqlDialect:
    quote: Callable[[str], str]
    all_but: Callable[[str], str]  # quoted column -> "* without it"
    unnest_items: Callable[[str], str]  # quoted list column -> FROM clause naming `_item`


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
        quote = self.dialect.quote
        condition, params = self._condition(where, item)
        order = f" ORDER BY {quote(order_by)} DESC" if order_by else ""
        columns = self.dialect.all_but(quote(ROW_ID_COLUMN))
        sql = (
            f"SELECT {columns} FROM {{table}}{condition}{order} "
            f"LIMIT {int(limit)} OFFSET {int(offset)}"
        )
        return self.query(sql, params)

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
                tests.append(f"LOWER(_item.{quote(item.field)}) = LOWER($item_value)")
                params["item_value"] = item.value
            if item.score_field is not None and item.min_score is not None:
                tests.append(f"_item.{quote(item.score_field)} >= $item_score")
                params["item_score"] = item.min_score
            clauses.append(
                f"EXISTS (SELECT 1 FROM {self.dialect.unnest_items(quote(item.column))} "
                f"WHERE {' AND '.join(tests)})"
            )
        return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params
