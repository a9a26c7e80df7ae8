"""Writing rows to BigQuery and reading them back, each row once.

Writes use streaming inserts (``tabledata.insertAll``) with each row's tideflow row id in
the ``_tideflow_row_id`` column and as its ``insertId`` (a SHA-256 of it when longer than
BigQuery's 128 characters). BigQuery drops a repeated ``insertId`` only on a best-effort
basis (for about a minute), so a redelivered event can still store a second copy: every
read goes through a de-duplicating subquery that keeps one row per row id::

    SELECT * EXCEPT(_tideflow_rn) FROM (
        SELECT *, ROW_NUMBER() OVER (PARTITION BY _tideflow_row_id) AS _tideflow_rn
        FROM `project.dataset.table`) WHERE _tideflow_rn = 1

Which copy survives is not defined; copies describe the same event, but values computed
at processing time (a latency, a timestamp) may differ between them.

``select``/``count`` behave like the DuckDB reader's; ``query(sql, params)`` replaces
``{table}`` with that subquery and ``$name`` placeholders with BigQuery's ``@name``
query parameters. Reads use the REST API only (no BigQuery Storage API).

Guarantees: a batch goes out in ``insertAll`` requests of up to 500 rows; if BigQuery
rejects any row the sink raises ``SinkError`` and the consumer nacks the whole batch
(rows that did land are hidden as duplicates when the batch comes back). API calls give
up after 30 s of retries, queries after 120 s. Rows streamed into a table created
moments ago can be refused for a short while (BigQuery's metadata propagation); the
events are then redelivered. Settings: see ``tideflow.io.gcp.bigquery``.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from google.cloud import bigquery

from tideflow.exceptions import ReadError, RowError, SinkError, SinkUnavailableError
from tideflow.io.gcp.errors import one_line, translated
from tideflow.io.schema import ROW_ID_COLUMN, Field, row_values
from tideflow.io.sql import SqlDialect, SqlTableReader, first_rows
from tideflow.io.strategies import Sink
from tideflow.types import QueryResult

# The library's default retries for 10 minutes; a consumer should fail sooner and retry.
API_RETRY = bigquery.DEFAULT_RETRY.with_deadline(30.0)
QUERY_TIMEOUT = 120.0
_MAX_INSERT_ID = 128
_MAX_ROWS_PER_REQUEST = 500
_ROW_NUMBER = "_tideflow_rn"
# Strings, quoted names and comments are copied as they are; ``$name`` outside them
# becomes ``@name``.
_PLACEHOLDERS = re.compile(
    r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`|--[^\n]*|\#[^\n]*|/\*.*?\*/)"""
    r"|\$([A-Za-z_]\w*)",
    re.DOTALL,
)


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


class BigQuerySink(Sink):
    """Streams ``(row_id, row)`` pairs into a table."""

    def __init__(
        self,
        client: Callable[[], bigquery.Client],
        *,
        table_ref: str,
        fields: Sequence[Field],
        location: str,
    ) -> None:
        self._client = client
        self.table_ref = table_ref
        self.location = location
        self._names = [f.name for f in fields]

    def write(self, rows: Sequence[tuple[str, Any]]) -> None:
        for start in range(0, len(rows), _MAX_ROWS_PER_REQUEST):
            self._insert(rows[start : start + _MAX_ROWS_PER_REQUEST])

    def _insert(self, rows: Sequence[tuple[str, Any]]) -> None:
        if not rows:
            return
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
            errors = self._client().insert_rows_json(
                self.table_ref,
                payload,
                row_ids=[insert_id(row_id) for row_id, _ in rows],
                retry=API_RETRY,
            )
        if errors:
            # insertAll keeps the valid rows unless one is invalid; name each refused row
            # so only its own event fails ("stopped" rows are only collateral: retried).
            rejected = {
                rows[int(e["index"])][0]: one_line(str(e.get("errors")))
                for e in errors
                if not all(x.get("reason") == "stopped" for x in e.get("errors") or [])
            }
            first = errors[0]
            message = (
                f"BigQuery refused {len(errors)} of {len(rows)} row(s) for {self.table_ref}; "
                f"row {first.get('index')}: {one_line(str(first.get('errors')))}"
            )
            if rejected:
                raise RowError(message, rejected=rejected)
            raise SinkError(message)


class BigQueryReader(SqlTableReader):
    """Reads one table through its de-duplicating subquery."""

    dialect = SqlDialect(
        quote=quote,
        all_but=lambda column: f"* EXCEPT({column})",
        unnest_items=lambda column: f"UNNEST({column}) AS _item",
        name="bigquery",
        hash_comments=True,
    )

    def __init__(
        self, client: Callable[[], bigquery.Client], *, table_ref: str, location: str
    ) -> None:
        self._client = client
        self.table_ref = quote(table_ref)
        self.location = location

    @property
    def deduplicated(self) -> str:
        """The table as a subquery with one row per row id."""
        return (
            f"(SELECT * EXCEPT({_ROW_NUMBER}) FROM (SELECT *, ROW_NUMBER() OVER "
            f"(PARTITION BY {quote(ROW_ID_COLUMN)}) AS {_ROW_NUMBER} FROM {self.table_ref}) "
            f"WHERE {_ROW_NUMBER} = 1)"
        )

    def query(self, sql: str, params: dict[str, Any] | None = None) -> QueryResult:
        return self._run(_placeholders(sql.replace("{table}", self.deduplicated)), params)

    def _user_query(self, sql: str, *, read_only: bool, max_rows: int) -> QueryResult:
        # BigQuery has no read-only transaction: the statement check is the lock (a write
        # or schema change is its own statement there, and scripts are refused with it).
        sql = sql.replace("{table}", self.deduplicated)
        found = self._run(sql, None, max_rows=max_rows + 1)
        return first_rows(found.columns, found.rows, max_rows)

    def _run(
        self, sql: str, params: dict[str, Any] | None, *, max_rows: int | None = None
    ) -> QueryResult:
        config = bigquery.QueryJobConfig(
            query_parameters=[parameter(name, value) for name, value in (params or {}).items()]
        )
        with translated(
            resource=f"table {self.table_ref}",
            action="query",
            error=ReadError,
            permission="bigquery.jobs.create and bigquery.tables.getData",
        ):
            # jobs.query in one round trip for short queries (no job polling), which is
            # what status pages issue.
            result = self._client().query_and_wait(
                sql,
                job_config=config,
                location=self.location,
                api_timeout=QUERY_TIMEOUT,
                wait_timeout=QUERY_TIMEOUT,
                retry=API_RETRY,
                max_results=max_rows,
            )
            columns = [field.name for field in result.schema]
            rows = [tuple(row.values()) for row in result]
        return QueryResult(columns=columns, rows=rows)


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
