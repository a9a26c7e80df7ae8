"""``select``/``count`` for SQL warehouses, written once; each adapter names its dialect.

Adapters subclass ``SqlTableReader``, implement ``query`` (``{table}`` and ``$name``
placeholders) and give a ``SqlDialect``: how to quote a name, drop a column from ``*``
and unnest a list column into rows called ``_item``. An adapter that keeps item indexes
(``tideflow.io.item_index``) lists them in ``indexes``: item filters then pick a page's
row ids from the side table and read only those rows.

``user_query`` runs someone's own SQL (``tideflow query``): one statement, a read unless
writes are allowed, and then only a row change (INSERT, UPDATE, DELETE), never a schema
change, so the app's tables stay as ``tideflow apply`` made them. The adapter runs it in
its warehouse's read-only mode when it has one, and returns at most ``max_rows`` rows,
read as they stream.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tideflow.exceptions import InvalidQueryError
from tideflow.io.schema import ROW_ID_COLUMN
from tideflow.io.strategies import (
    DEFAULT_QUERY_ROWS,
    MAX_QUERY_ROWS,
    Dialect,
    ItemFilter,
    TableReader,
    check_paging,
)
from tideflow.types import QueryResult

if TYPE_CHECKING:
    from tideflow.io.item_index import ItemIndex

# From this offset on, a page past the middle is read from the other end.
FLIP_OFFSET = 10_000
# Pages of filters a row can match several times (label contains...) up to this far are
# de-duplicated in Python from a sorted read; deeper ones are grouped in SQL.
DEDUPE_UP_TO = 2_000

READ_STATEMENTS = frozenset(
    {"SELECT", "WITH", "VALUES", "FROM", "TABLE", "DESCRIBE", "SHOW", "SUMMARIZE", "EXPLAIN"}
)
ROW_CHANGES = frozenset({"INSERT", "UPDATE", "DELETE"})
# One SQL token at a time: quoted text, comments and whitespace as a whole. Each quote
# form is tried closed first; an unclosed one is refused rather than guessed at.
_TOKENS = (
    r"(?P<skip>\s+|--[^\n]*|/\*.*?\*/{hash})"
    r"|(?P<quoted>'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`"
    r"|\$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?\$(?P=tag)\$)"
    r"|(?P<open>['\"`]|/\*|\$(?:[A-Za-z_]\w*)?\$)"
    r"|(?P<end>;)"
    r"|(?P<word>[A-Za-z_]\w*)"
    r"|."
)
_LEXERS = {
    hash_comments: re.compile(_TOKENS.format(hash=r"|\#[^\n]*" if hash_comments else ""), re.S)
    for hash_comments in (False, True)
}


def quote(name: str) -> str:
    """A SQL identifier in double quotes (DuckDB, PostgreSQL; BigQuery's dialect has its
    own backticks)."""
    return '"' + name.replace('"', '""') + '"'


@dataclasses.dataclass(frozen=True, kw_only=True)
class SqlDialect(Dialect):
    quote: Callable[[str], str]
    all_but: Callable[[str], str]  # quoted column -> "* without it"
    unnest_items: Callable[[str], str]  # quoted list column -> FROM clause naming `_item`
    hash_comments: bool = False  # ``# ...`` is a comment (BigQuery), not an operator


def statement_keywords(sql: str, *, hash_comments: bool = False) -> list[str]:
    """The first word of each statement in ``sql``, upper case (opening parentheses
    skipped; a statement that opens with something else gives that text)."""
    keywords: list[str] = []
    at_start = True
    for token in _LEXERS[hash_comments].finditer(sql):
        if token["skip"] is not None:
            continue
        if token["open"] is not None:
            raise InvalidQueryError(f"the query has an unclosed {token['open']}")
        if token["end"] is not None:
            at_start = True
        elif at_start and token[0] != "(":
            keywords.append(token["word"].upper() if token["word"] else token[0])
            at_start = False
    return keywords


def check_user_sql(sql: str, *, allow_writes: bool, hash_comments: bool = False) -> None:
    """Refuse (``InvalidQueryError``) all but one read statement, or with ``allow_writes``
    one read or row change."""
    keywords = statement_keywords(sql, hash_comments=hash_comments)
    if len(keywords) != 1:
        raise InvalidQueryError(
            f"give one SQL statement, not {len(keywords)}" if keywords else "the query is empty"
        )
    (keyword,) = keywords
    if keyword in READ_STATEMENTS or (allow_writes and keyword in ROW_CHANGES):
        return
    if keyword in ROW_CHANGES:
        raise InvalidQueryError(
            f"{keyword} changes rows and queries are read-only; "
            "`tideflow query --write` runs INSERT, UPDATE and DELETE"
        )
    raise InvalidQueryError(
        f"{keyword} statements are not run: a query reads (SELECT, WITH) or, with --write, "
        "changes rows (INSERT, UPDATE, DELETE); tables are made by `tideflow apply`"
    )


class SqlTableReader(TableReader):
    dialect: SqlDialect
    indexes: Sequence[ItemIndex] = ()  # adapters that keep item indexes list theirs
    contains_like = False  # "contains" filters on an index as LIKE (for a trigram index)

    def user_query(
        self, sql: str, *, allow_writes: bool = False, max_rows: int = DEFAULT_QUERY_ROWS
    ) -> QueryResult:
        if not 1 <= max_rows <= MAX_QUERY_ROWS:
            raise InvalidQueryError(
                f"max rows must be between 1 and {MAX_QUERY_ROWS:,}, got {max_rows}"
            )
        check_user_sql(sql, allow_writes=allow_writes, hash_comments=self.dialect.hash_comments)
        return self._user_query(sql, read_only=not allow_writes, max_rows=max_rows)

    def _user_query(self, sql: str, *, read_only: bool, max_rows: int) -> QueryResult:
        """Run ``sql`` (checked) read-only when asked and the warehouse can; fetch at most
        ``max_rows + 1`` rows and give ``first_rows``' answer."""
        raise NotImplementedError(f"{type(self).__name__} must implement _user_query()")

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
            limit, offset, ascending = self._from_the_end(where, item, limit, offset)
        if index is None or item is None:
            sql, params = self.select_sql(
                where=where, item=item, order_by=order_by, ascending=ascending
            )
            found = self.query(f"{sql} LIMIT {int(limit)} OFFSET {int(offset)}", params)
        else:
            found = self._indexed_page(index, item, ascending, limit, offset)
        if ascending:
            return QueryResult(columns=found.columns, rows=found.rows[::-1])
        return found

    def _from_the_end(
        self, where: dict[str, Any] | None, item: ItemFilter | None, limit: int, offset: int
    ) -> tuple[int, int, bool]:
        """A deep page as (limit, offset, ascending): past the middle, the page counted
        from the other end needs a small sort, not one of offset + limit rows."""
        total = self.count(where=where, item=item)
        if offset >= total:
            return 0, 0, False
        if offset <= total // 2:
            return limit, offset, False
        end = min(total, offset + limit)
        return end - offset, total - end, True

    def _indexed_page(
        self, index: ItemIndex, item: ItemFilter, ascending: bool, limit: int, offset: int
    ) -> QueryResult:
        """The page's row ids from the item index, then only those rows (an IN list of ids
        is a point lookup; a join would scan the whole table)."""
        matching, params, several = index.matching_ids_sql(item, like=self.contains_like)
        direction = "ASC" if ascending else "DESC"
        ids = self._page_ids(matching, params, several, direction, limit, offset)
        row_id = self.dialect.quote(ROW_ID_COLUMN)
        rows = self.query(
            f"SELECT {row_id} AS _id, {self.dialect.all_but(row_id)} FROM {{table}} "
            # Typed, so that an empty page is a valid array on every warehouse.
            f"WHERE {row_id} IN (SELECT unnest(CAST($ids AS TEXT[])))",
            {"ids": ids},
        )
        by_id = {row[0]: row[1:] for row in rows.rows}
        return QueryResult(columns=rows.columns[1:], rows=[by_id[i] for i in ids if i in by_id])

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


def first_rows(columns: list[str], rows: Sequence[Sequence[Any]], max_rows: int) -> QueryResult:
    """``max_rows + 1`` fetched rows as a result of at most ``max_rows``, marked truncated
    when there were more."""
    return QueryResult(
        columns=columns,
        rows=[tuple(row) for row in rows[:max_rows]],
        truncated=len(rows) > max_rows,
    )
