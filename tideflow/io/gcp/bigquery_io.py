"""Writing rows to BigQuery and reading them back, each row once.

Writes use streaming inserts (``tabledata.insertAll``) with each row's tideflow row id in
the ``_tideflow_row_id`` column and as its ``insertId`` (a SHA-256 of it when longer than
BigQuery's 128 characters). BigQuery drops a repeated ``insertId`` only on a best-effort
basis (for about a minute), so a redelivered event can still store a second copy: every
read keeps one row per row id. ``{table}`` in a query becomes::

    (SELECT * FROM `project.dataset.table` WHERE <condition>
     QUALIFY ROW_NUMBER() OVER (PARTITION BY _tideflow_row_id) = 1)

where ``<condition>`` is the query's own ``WHERE`` when one follows ``{table}`` directly
(``TRUE`` otherwise): it filters the table *before* the copies are dropped, so BigQuery
prunes partitions and clustered blocks (a status poll on ``image_id`` reads that id's
blocks, a time filter reads its days), which a filter outside the window cannot. The
condition must name the table's columns unqualified (``FROM {table} AS t WHERE t.x``
is not moved: it reads the whole table). Which copy of a row survives is not defined;
copies describe the same event, but values computed at processing time (a latency, a
timestamp) may differ between them.

``select``/``count`` behave like the DuckDB reader's; ``query(sql, params)`` replaces
``{table}`` as above and ``$name`` placeholders with BigQuery's ``@name`` query parameters.
``export`` runs one query job and reads its result page by page (each further page is
free), not a query per page. Reads use the REST API only (no BigQuery Storage API), in the
dataset's real location (read once from the dataset, see ``BigQueryDataset``).

Guarantees: a batch goes out in ``insertAll`` requests of up to 500 rows with
``skipInvalidRows``: BigQuery stores the valid rows and names the rows it refused, and
the sink raises ``RowError`` naming only those, so only their events fail. Rows BigQuery
reports as ``stopped`` (not stored because another row was invalid) are sent again at
once without the refused ones; a row is never taken as stored unless BigQuery stored it.
The warehouse, not a row, is at fault (``SinkUnavailableError``, waited out by the
worker) when BigQuery is unreachable or over a quota or rate limit, when streaming does
not see the table yet (404), and when it refuses a column ("no such field") that the
table has (streaming learns of new columns minutes after apply) or that the schema
declares but the table lacks (apply has not run). API calls give up after 30 s of
retries, queries after 120 s. Settings: see ``tideflow.io.gcp.bigquery``.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from google.api_core import exceptions as api_exceptions
from google.cloud import bigquery

from tideflow.exceptions import ReadError, RowError, SinkError, SinkUnavailableError
from tideflow.io.errors import one_line
from tideflow.io.gcp.errors import translated
from tideflow.io.schema import ROW_ID_COLUMN, Field, row_values
from tideflow.io.sql import SqlDialect, SqlTableReader, first_rows
from tideflow.io.strategies import ItemFilter, Sink
from tideflow.types import QueryResult

# The library's default retries for 10 minutes; a consumer should fail sooner and retry.
API_RETRY = bigquery.DEFAULT_RETRY.with_deadline(30.0)
QUERY_TIMEOUT = 120.0
_MAX_INSERT_ID = 128
_MAX_ROWS_PER_REQUEST = 500
# Strings, quoted names and comments: copied as they are, never searched.
_LITERALS = r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`|--[^\n]*|\#[^\n]*|/\*.*?\*/"""
# ``$name`` outside literals becomes ``@name``.
_PLACEHOLDERS = re.compile(rf"({_LITERALS})|\$([A-Za-z_]\w*)", re.DOTALL)
# The tokens that decide where a WHERE condition ends.
_TOKENS = re.compile(rf"{_LITERALS}|(?P<word>[A-Za-z_]\w*)|(?P<paren>[()])|(?P<end>;)", re.DOTALL)
# What can follow a WHERE in the same query: its condition ends at the first of these
# outside parentheses (or at a ")" that closes an enclosing one).
_AFTER_WHERE = frozenset(
    {"GROUP", "HAVING", "QUALIFY", "WINDOW", "ORDER", "LIMIT", "UNION", "INTERSECT", "EXCEPT"}
)
_TABLE = "{table}"
_WHERE = re.compile(r"\s+WHERE\b", re.IGNORECASE)
_NO_SUCH_FIELD = re.compile(r"no such field\b:?\s*([\w.]*)", re.IGNORECASE)


def quote(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def insert_id(row_id: str) -> str:
    if len(row_id) <= _MAX_INSERT_ID:
        return row_id
    return "sha256:" + hashlib.sha256(row_id.encode()).hexdigest()


def json_value(value: Any) -> Any:
    """``value`` as insertAll's JSON wants it (timestamps as RFC 3339, bytes as base64)."""
    if isinstance(value, datetime.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
        return aware.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


def _has_path(fields: Sequence[Any], path: str) -> bool:
    """Whether ``fields`` (BigQuery ``SchemaField``s or tideflow ``Field``s) has the
    column ``path`` (``record.field`` for a nested one); names are case-insensitive."""
    head, _, rest = path.partition(".")
    for field in fields:
        if field.name.lower() == head.lower():
            return not rest or _has_path(field.fields, rest)
    return False


class BigQuerySink(Sink):
    """Streams ``(row_id, row)`` pairs into a table."""

    def __init__(
        self,
        client: Callable[[], bigquery.Client],
        *,
        table_ref: str,
        fields: Sequence[Field],
    ) -> None:
        self._client = client
        self.table_ref = table_ref
        self._fields = tuple(fields)
        self._names = [f.name for f in fields]

    def write(self, rows: Sequence[tuple[str, Any]]) -> None:
        for start in range(0, len(rows), _MAX_ROWS_PER_REQUEST):
            self._insert(rows[start : start + _MAX_ROWS_PER_REQUEST])

    def _insert(self, rows: Sequence[tuple[str, Any]]) -> None:
        refused: dict[str, str] = {}
        columns: set[str] = set()
        unsent = list(rows)
        while unsent:
            stopped: list[tuple[str, Any]] = []
            for entry in self._insert_all(unsent):
                row_id, row = unsent[int(entry["index"])]
                reasons = entry.get("errors") or []
                if all(r.get("reason") == "stopped" for r in reasons):
                    stopped.append((row_id, row))  # valid, not stored: another was refused
                    continue
                refused[row_id] = one_line(str(reasons))
                columns.update(_unknown_columns(reasons))
            if len(stopped) == len(unsent):
                raise SinkError(
                    f"BigQuery stored none of {len(unsent)} row(s) for {self.table_ref} and "
                    "named no invalid row"
                )
            unsent = stopped
        if columns:
            self._check_columns(columns)
        if refused:
            row_id, why = next(iter(refused.items()))
            raise RowError(
                f"BigQuery refused {len(refused)} of {len(rows)} row(s) for {self.table_ref}; "
                f"row {row_id!r}: {why}",
                rejected=refused,
            )

    def _insert_all(self, rows: Sequence[tuple[str, Any]]) -> Sequence[dict[str, Any]]:
        """One insertAll request; BigQuery's errors for the rows it did not store."""
        payload = []
        for row_id, row in rows:
            values = row_values(row)
            record = {name: json_value(values[name]) for name in self._names}
            record[ROW_ID_COLUMN] = row_id
            payload.append(record)
        with translated(
            resource=f"table {self.table_ref}",
            action=f"write {len(rows)} row(s) to",
            error=SinkError,
            permission="bigquery.tables.updateData",
            unavailable=SinkUnavailableError,
        ):
            try:
                return self._client().insert_rows_json(
                    self.table_ref,
                    payload,
                    row_ids=[insert_id(row_id) for row_id, _ in rows],
                    # Store the valid rows even when one is invalid (without it BigQuery
                    # stores none and answers "stopped" for the valid ones).
                    skip_invalid_rows=True,
                    retry=API_RETRY,
                )
            except api_exceptions.NotFound as exc:
                raise self._not_found(exc) from exc

    def _table(self) -> bigquery.Table | None:
        """The table's metadata (which, unlike streaming, follows apply at once)."""
        with translated(
            resource=f"table {self.table_ref}",
            action="look up",
            error=SinkError,
            permission="bigquery.tables.get",
            unavailable=SinkUnavailableError,
        ):
            try:
                return self._client().get_table(self.table_ref, retry=API_RETRY)
            except api_exceptions.NotFound:
                return None

    def _not_found(self, exc: api_exceptions.NotFound) -> SinkUnavailableError:
        if self._table() is None:
            return SinkUnavailableError(
                f"table {self.table_ref} does not exist: run `tideflow apply` "
                f"(writes wait until it does; {one_line(str(exc.message))})"
            )
        return SinkUnavailableError(
            f"BigQuery's streaming inserts do not see table {self.table_ref} yet (it was "
            "created moments ago); waiting"
        )

    def _check_columns(self, columns: set[str]) -> None:
        """Raise ``SinkUnavailableError`` when rows were refused for a column that the table
        has (streaming learns of a new column minutes after it was added) or that the
        schema declares (the table was not altered yet): neither is the rows' fault."""
        table = self._table()
        for column in sorted(columns):
            if table is not None and _has_path(table.schema, column):
                raise SinkUnavailableError(
                    f"BigQuery's streaming inserts do not see column {column} of "
                    f"{self.table_ref} yet (added moments ago); waiting"
                )
            if _has_path(self._fields, column):
                raise SinkUnavailableError(
                    f"table {self.table_ref} has no column {column}, which the schema "
                    "declares: run `tideflow apply` (writes wait until it has)"
                )


def _unknown_columns(reasons: Sequence[dict[str, Any]]) -> Iterator[str]:
    """The columns BigQuery answered "no such field" for."""
    for reason in reasons:
        found = _NO_SUCH_FIELD.search(str(reason.get("message", "")))
        if found is not None:
            column = found.group(1).strip(".") or str(reason.get("location") or "")
            if column:
                yield column


class BigQueryReader(SqlTableReader):
    """Reads one table, one row per row id (see the module's docstring)."""

    dialect = SqlDialect(
        quote=quote,
        all_but=lambda column: f"* EXCEPT({column})",
        unnest_items=lambda column: f"UNNEST({column}) AS _item",
        name="bigquery",
        hash_comments=True,
    )

    def __init__(
        self,
        client: Callable[[], bigquery.Client],
        *,
        table_ref: str,
        location: Callable[[], str],
    ) -> None:
        self._client = client
        self.table_ref = quote(table_ref)
        self._location = location

    @property
    def location(self) -> str:
        """Where queries run: the dataset's location."""
        return self._location()

    def rows_where(self, condition: str) -> str:
        """The rows matching ``condition``, one per row id, as a subquery."""
        return (
            f"(SELECT * FROM {self.table_ref} WHERE {condition}\n"
            f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {quote(ROW_ID_COLUMN)}) = 1)"
        )

    def expand(self, sql: str) -> str:
        """``sql`` with each ``{table}`` replaced by ``rows_where``, taking the ``WHERE``
        that follows it, if any, inside (so the filter prunes before de-duplication)."""
        parts: list[str] = []
        position = 0
        while (found := sql.find(_TABLE, position)) >= 0:
            parts.append(sql[position:found])
            after = found + len(_TABLE)
            where = _WHERE.match(sql, after)
            if where is None:
                parts.append(self.rows_where("TRUE"))
                position = after
                continue
            condition = sql[where.end() : _condition_end(sql, where.end())].rstrip()
            parts.append(self.rows_where(self.expand(condition).strip()))
            position = where.end() + len(condition)
        parts.append(sql[position:])
        return "".join(parts)

    def _job(self, sql: str, params: dict[str, Any] | None, **options: Any) -> Any:
        config = bigquery.QueryJobConfig(
            query_parameters=[parameter(name, value) for name, value in (params or {}).items()]
        )
        # jobs.query in one round trip for short queries (no job polling), which is what
        # status pages issue.
        return self._client().query_and_wait(
            _placeholders(self.expand(sql)),
            job_config=config,
            location=self.location,
            api_timeout=QUERY_TIMEOUT,
            wait_timeout=QUERY_TIMEOUT,
            retry=API_RETRY,
            **options,
        )

    def _translated(self) -> Any:
        return translated(
            resource=f"table {self.table_ref}",
            action="query",
            error=ReadError,
            permission="bigquery.jobs.create and bigquery.tables.getData",
        )

    def query(self, sql: str, params: dict[str, Any] | None = None) -> QueryResult:
        return self._run(sql, params)

    def _user_query(self, sql: str, *, read_only: bool, max_rows: int) -> QueryResult:
        # BigQuery has no read-only transaction: the statement check is the lock (a write
        # or schema change is its own statement there, and scripts are refused with it).
        found = self._run(sql, None, max_results=max_rows + 1)
        return first_rows(found.columns, found.rows, max_rows)

    def _run(self, sql: str, params: dict[str, Any] | None, **options: Any) -> QueryResult:
        with self._translated():
            result = self._job(sql, params, **options)
            columns = [field.name for field in result.schema]
            rows = [tuple(row.values()) for row in result]
        return QueryResult(columns=columns, rows=rows)

    def pages(
        self,
        *,
        item: ItemFilter | None = None,
        order_by: str | None = None,
        page_rows: int | None = None,
    ) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        """One query job, its result read page by page (BigQuery bills the query once;
        reading its result is free): not one query per page."""
        from tideflow.io.export import PAGE_ROWS

        sql, params = self.select_sql(item=item, order_by=order_by)
        with self._translated():
            result = self._job(sql, params, page_size=page_rows or PAGE_ROWS)
            columns = [field.name for field in result.schema]
            for page in result.pages:
                rows = [tuple(row.values()) for row in page]
                if rows:
                    yield columns, rows


def _condition_end(sql: str, start: int) -> int:
    """Where the WHERE condition that starts at ``start`` ends."""
    depth = 0
    for token in _TOKENS.finditer(sql, start):
        if token["paren"] == "(":
            depth += 1
        elif token["paren"] == ")":
            if depth == 0:
                return token.start()
            depth -= 1
        elif depth == 0 and (
            token["end"] or (token["word"] and token["word"].upper() in _AFTER_WHERE)
        ):
            return token.start()
    return len(sql)


def _placeholders(sql: str) -> str:
    return _PLACEHOLDERS.sub(lambda m: m.group(1) or f"@{m.group(2)}", sql)


def _type(value: Any) -> str:
    # bool before int: True is an int too.
    for kind, name in (
        (bool, "BOOL"),
        (int, "INT64"),
        (float, "FLOAT64"),
        (decimal.Decimal, "NUMERIC"),
        (str, "STRING"),
        (bytes, "BYTES"),
        (datetime.datetime, "TIMESTAMP"),
        (datetime.date, "DATE"),
    ):
        if isinstance(value, kind):
            return name
    raise ReadError(f"query parameters cannot be {type(value).__name__} values")


def parameter(
    name: str, value: Any
) -> bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter:
    """A BigQuery query parameter for a Python value (None is a NULL STRING)."""
    if isinstance(value, list | tuple):
        kinds = {_type(v) for v in value if v is not None}
        if len(kinds) > 1:
            raise ReadError(f"query parameter {name!r} mixes {', '.join(sorted(kinds))} values")
        return bigquery.ArrayQueryParameter(name, kinds.pop() if kinds else "STRING", list(value))
    return bigquery.ScalarQueryParameter(name, "STRING" if value is None else _type(value), value)
