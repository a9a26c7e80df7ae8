"""PostgreSQL as the warehouse, on any stack: for consumers on many machines.

``PostgresDatabase(url)`` is an existing database (``POSTGRES_URL`` when ``url`` is None,
e.g. ``postgresql://user:password@host:5432/db``; on AWS that is RDS or Aurora): tideflow
creates tables in it, never the server or the database. ``PostgresTable(database,
"name").options(schema=Row)`` is a table whose columns come from the row dataclass
(``tideflow.io.schema``): text, bigint, double precision, boolean, bytea, timestamptz,
date; a record or a list of records is ``jsonb``; a list of scalars is an array. apply
creates the table and adds columns the dataclass gained (additive changes only; added
columns are nullable); a second apply changes nothing; destroy drops the table.

Delivery: each table has a hidden ``_tideflow_row_id`` primary key and a batch is one
``INSERT ... ON CONFLICT DO NOTHING`` in one transaction, so any number of consumers on any
number of machines can write the same event twice and the table keeps one row. When the
server refuses a batch for its data, rows are retried one by one and ``RowError`` names
the refused ones; the others are committed. When it cannot take any row now, the write
raises ``SinkUnavailableError``, which the worker waits out with backoff, burning no
delivery attempt: connection problems (refused, lost, SQLSTATE classes 08 and 57: a server
shutting down or restarting), a read-only server (25006: a writer demoted during an RDS or
Aurora failover, reached through a stale DNS entry), conflicts and deadlocks (class 40),
timeouts, and class 42 errors that are not about a row's data (42501 permission denied,
42P01/42703 a missing table or column): grants and tables are fixed by people, and the
events wait for them. Reads raise ``ReadError``.

Connections: TCP keepalives (idle 30 s, then 3 probes 10 s apart) and
``tcp_user_timeout`` 60 s find a server that vanished without closing the connection (a
failover, a changed security group) in about a minute, not the OS's 2 hours; every
statement has ``statement_timeout`` 60 s and ``lock_timeout`` 10 s (apply lifts them for
its own back-fills and DDL), so a write stuck behind a lock is retried, not left hanging.
The URL's own parameters win (``?options=-c%20statement_timeout%3D120s``). TLS is
verified by default: ``sslmode=verify-full`` unless the URL (or ``PGSSLMODE``) sets
another; give the server's CA with ``sslrootcert=/path/to/ca.pem`` (RDS and Aurora: AWS's
``global-bundle.pem``) or ``sslrootcert=system``. A missing certificate, or a server
without TLS, stops with a ``ConfigError`` that says which to set.

Reads: the same ``select``/``count``/``query`` interface as DuckDB and BigQuery
(``tideflow.io.sql``); ``query`` takes ``{table}`` and ``$name`` placeholders. Each process
keeps a small pool of connections (``pool_size``, default 8) shared by its threads.
``failure_log()`` is the ``<table>_failures`` table in the same database.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from tideflow.exceptions import (
    ConfigError,
    PrimitiveError,
    ReadError,
    RowError,
    SinkError,
    SinkUnavailableError,
)
from tideflow.io.item_index import ItemIndex
from tideflow.io.postgres.item_index import backfill, create, insert_items
from tideflow.io.primitive import PlanAction, PlanStep, Primitive
from tideflow.io.schema import ROW_ID_COLUMN, Field, Kind, row_values
from tideflow.io.sql import SqlDialect, SqlTableReader, first_rows, quote
from tideflow.io.sql_table import SqlTable
from tideflow.io.strategies import Sink
from tideflow.types import QueryResult

URL_ENV = "POSTGRES_URL"
# Connection settings unless the URL sets them (see the module docstring).
CONNECTION_DEFAULTS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "60000",
}
STATEMENT_OPTIONS = "-c statement_timeout=60s -c lock_timeout=10s"
DEFAULT_SSLMODE = "verify-full"
# How long a thread waits for one of the pool's connections before giving up.
POOL_WAIT_SECONDS = 30.0
# SQLSTATEs of class 42 that are about a row's values (a number too big for its column,
# a value of the wrong type), not about the table or the grants.
_ROW_DATA_STATES = {"42804", "42846", "42P08", "42P18"}
_SECRET_PARAMETERS = re.compile(r"(^|&)((?:ssl)?password)=[^&]*")
logger = logging.getLogger("tideflow.postgres")
_TYPES = {
    Kind.STRING: "text",
    Kind.INTEGER: "bigint",
    Kind.FLOAT: "double precision",
    Kind.BOOLEAN: "boolean",
    Kind.BYTES: "bytea",
    Kind.TIMESTAMP: "timestamptz",
    Kind.DATE: "date",
}
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def is_json(field: Field) -> bool:
    return field.kind is Kind.RECORD


def postgres_type(field: Field) -> str:
    if field.kind is Kind.RECORD:
        return "jsonb"
    return f"{_TYPES[field.kind]}[]" if field.repeated else _TYPES[field.kind]


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def redacted(url: str) -> str:
    """``url`` without its passwords (user info, ``?password=``, ``?sslpassword=``), for
    messages and primitive ids."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@")
    query = _SECRET_PARAMETERS.sub(r"\1\2=***", parts.query)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def connection_settings(url: str) -> dict[str, str]:
    """What ``psycopg.connect(url, **settings)`` adds to the URL: the defaults it lacks,
    the statement timeouts (before the URL's own ``options``, which win), and TLS
    verification unless the URL or ``PGSSLMODE`` chose a mode."""
    given = conninfo_to_dict(url)
    settings = {k: v for k, v in CONNECTION_DEFAULTS.items() if k not in given}
    own = given.get("options")
    settings["options"] = f"{STATEMENT_OPTIONS} {own}" if own else STATEMENT_OPTIONS
    if "sslmode" not in given and not os.environ.get("PGSSLMODE"):
        settings["sslmode"] = DEFAULT_SSLMODE
    return settings


def unavailable(exc: psycopg.Error) -> bool:
    """True when the server cannot take any write now, whatever the rows (see the module
    docstring); False when it refused these rows."""
    state = exc.sqlstate or ""
    if isinstance(exc, psycopg.OperationalError) or state == "25006":
        return True
    return state[:2] in ("08", "40", "53", "57") or (
        state[:2] == "42" and state not in _ROW_DATA_STATES
    )


def _refuses_rows(exc: psycopg.Error) -> bool:
    return isinstance(
        exc, psycopg.DataError | psycopg.IntegrityError | psycopg.ProgrammingError
    ) and not unavailable(exc)


def _tls_problem(exc: psycopg.Error) -> str | None:
    """What to set when ``exc`` is libpq refusing to connect without verified TLS."""
    text = str(exc)
    if "root certificate file" in text:
        return (
            "no CA certificate to verify the server with (tideflow uses sslmode=verify-full "
            "unless POSTGRES_URL sets sslmode): add sslrootcert=/path/to/ca.pem to "
            "POSTGRES_URL (RDS and Aurora: AWS's global-bundle.pem), or sslrootcert=system "
            "for a certificate from a public CA"
        )
    if "server does not support SSL" in text:
        return (
            "the server offers no TLS, and tideflow verifies TLS by default "
            "(sslmode=verify-full): turn TLS on in the server, or on a network you trust "
            "set sslmode=disable in POSTGRES_URL"
        )
    return None


class _Pool:
    """Up to ``size`` autocommit-off connections, shared by a process's threads."""

    def __init__(self, url: str, size: int) -> None:
        self.url = url
        self.size = size
        self._settings: dict[str, Any] = connection_settings(url)
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        # Bounded, so that readers holding every connection delay a writer, not stall it.
        if not self._slots.acquire(timeout=POOL_WAIT_SECONDS):
            raise psycopg.OperationalError(
                f"all {self.size} connections of this process were busy for {POOL_WAIT_SECONDS:g} s"
            )
        conn: psycopg.Connection[Any] | None = None
        try:
            try:
                conn = self._idle.get_nowait()
                if conn.closed or conn.broken:
                    conn = None
            except queue.Empty:
                conn = None
            if conn is None:
                conn = psycopg.connect(self.url, **self._settings)
            yield conn
            if not conn.closed and not conn.broken:
                conn.rollback()  # leave no transaction open between uses
                self._idle.put(conn)
                conn = None
        finally:
            if conn is not None:
                if conn.broken:
                    # The server went away (a restart, a failover): the idle connections
                    # are most likely cut too, and would each fail once more.
                    self.close()
                conn.close()
            self._slots.release()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class PostgresDatabase(Primitive):
    """An existing PostgreSQL database; tideflow creates tables in it, not the database."""

    def __init__(self, url: str | None = None, *, pool_size: int = 8) -> None:
        self.url = url or os.environ.get(URL_ENV, "")
        if not self.url:
            raise ConfigError(
                f"no PostgreSQL database: set {URL_ENV}=postgresql://user:password@host:5432/db"
            )
        if not self.url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"{URL_ENV} must start with postgresql://, got {redacted(self.url)}")
        self.pool_size = pool_size
        self._pool: _Pool | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_pool"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return redacted(self.url)

    def pool(self) -> _Pool:
        with self._lock:
            if self._pool is None:
                self._pool = _Pool(self.url, self.pool_size)
            return self._pool

    @contextmanager
    def connection(
        self,
        error: type[Exception] = PrimitiveError,
        unavailable_error: type[Exception] | None = None,
    ) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; psycopg errors become ``error`` (kept as ``__cause__``), or
        ``unavailable`` when given for what may pass (see ``unavailable()``: connection
        problems, failover, conflicts, missing grants or tables). A connection refused
        for want of verified TLS is a ``ConfigError`` that says what to set."""
        try:
            with self.pool().connection() as conn:
                yield conn
        except psycopg.Error as exc:
            tls = _tls_problem(exc)
            if tls is not None:
                raise ConfigError(f"PostgreSQL {self.where}: {tls}") from exc
            kind = error if unavailable_error is None or not unavailable(exc) else unavailable_error
            raise kind(f"PostgreSQL {self.where}: {' '.join(str(exc).split())}") from exc

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def primitive_id(self) -> str:
        return f"postgres-database:{self.where}"

    def plan(self) -> PlanStep:
        with self.connection() as conn:
            conn.execute("SELECT 1")
        return self.step(PlanAction.NO_CHANGE, "exists (tideflow never creates the database)")

    def plan_destroy(self) -> PlanStep:
        return self.step(PlanAction.NO_CHANGE, "kept (tideflow never drops the database)")

    def apply(self) -> PlanStep:
        return self.plan()

    def destroy(self) -> PlanStep:
        step = self.plan_destroy()
        self.close()
        return step


class PostgresTable(SqlTable):
    """A table in a ``PostgresDatabase``; set its row type with ``.options(schema=Row)``."""

    def __init__(self, database: PostgresDatabase | str | None, table_name: str) -> None:
        if not isinstance(database, PostgresDatabase):
            database = PostgresDatabase(database)
        self.database = database
        self.table_name = table_name
        self.schema: type | None = None

    def primitive_id(self) -> str:
        return f"postgres-table:{self.database.where}/{self.table_name}"

    def depends_on(self) -> tuple[PostgresDatabase, ...]:
        return (self.database,)

    def sibling(self, table_name: str, *, schema: type) -> PostgresTable:
        return PostgresTable(self.database, table_name).options(schema=schema)

    def column_type(self, field: Field) -> str:
        return postgres_type(field)

    # The catalogs, not information_schema: it shows only the tables the role has a grant
    # on, and `run --only consumers` must see every table exist.
    def existing_columns(self) -> list[str] | None:
        with self.database.connection() as conn:
            rows = conn.execute(
                "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relname = %s "
                "AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum",
                [self.table_name],
            ).fetchall()
        return [r[0] for r in rows] or None

    def existing_tables(self, names: Sequence[str]) -> set[str]:
        with self.database.connection() as conn:
            found = conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relname = ANY(%s)",
                [list(names)],
            ).fetchall()
        return {row[0] for row in found}

    def _order_index(self) -> tuple[str, str] | None:
        """(index name, column): newest-first pages and deep pages of the table's first
        timestamp column read a B-tree, not a sort of the whole table."""
        column = next(
            (f.name for f in self.fields() if f.kind is Kind.TIMESTAMP and not f.repeated), None
        )
        return None if column is None else (f"{self.table_name[:40]}__by_{column}"[:63], column)

    def _missing_order_index(self) -> str | None:
        wanted = self._order_index()
        if wanted is None:
            return None
        with self.database.connection() as conn:
            found = conn.execute("SELECT to_regclass(%s)", [quote(wanted[0])]).fetchone()
        return wanted[1] if found is None or found[0] is None else None

    def changes(self) -> list[str]:
        unordered = self._missing_order_index()
        ordered = [f"add index on {unordered}"] if unordered else []
        return [*ordered, *super().changes()]

    def execute(self, statements: Sequence[str]) -> None:
        with self.database.connection() as conn:
            for statement in statements:
                conn.execute(statement)
            conn.commit()

    def migrate(self, step: PlanStep, statements: Sequence[str]) -> None:
        with self.database.connection() as conn:
            # Back-fills and index builds may take minutes on a big table; writers that
            # wait for apply's locks time out after their lock_timeout and try again.
            conn.execute("SET statement_timeout = 0")
            conn.execute("SET lock_timeout = 0")
            for statement in statements:
                conn.execute(statement)
            order_index = self._order_index()
            if order_index is not None and self._missing_order_index():
                name, column = order_index
                conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {quote(name)} "
                    f"ON {quote(self.table_name)} ({quote(column)})"
                )
            conn.commit()
            missing = {index.name for index in self.missing_indexes()}
            for index in self.item_indexes():
                self._fill_item_index(conn, index, new=index.name in missing)
            if missing:
                _vacuum(conn, sorted(missing))
            conn.execute("RESET statement_timeout")
            conn.execute("RESET lock_timeout")

    def _fill_item_index(
        self, conn: psycopg.Connection[Any], index: ItemIndex, *, new: bool
    ) -> None:
        """Create the side table when ``new``; on every apply, not only the first, give
        rows without index entries theirs: consumers of an earlier release, still running
        during a rolling upgrade, write rows without them."""
        try:
            with conn.transaction():
                # One apply at a time per side table: two back-fills would both index the
                # same rows.
                conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [index.name])
                if new:
                    create(conn, index, postgres_type)
                added = backfill(conn, index)
        except psycopg.errors.InsufficientPrivilege as exc:
            if new:
                raise
            # A role that may only read (``run --only service``) leaves them to the deployer.
            logger.warning(
                "%s: rows without index entries stay so until `tideflow apply` runs as the "
                "tables' owner (%s)",
                index.name,
                " ".join(str(exc).split()),
            )
            return
        if added and not new:
            logger.info("%s: indexed %d row(s) written without entries", index.name, added)

    def sink(self) -> PostgresSink:
        return PostgresSink(self)

    def reader(self) -> PostgresReader:
        return PostgresReader(self)


class PostgresSink(Sink):
    def __init__(self, table: PostgresTable) -> None:
        self.table = table
        self._fields = table.fields()
        names = [quote(f.name) for f in self._fields] + [quote(ROW_ID_COLUMN)]
        self._insert = f"INSERT INTO {quote(table.table_name)} ({', '.join(names)}) VALUES "
        self._marks = "(" + ", ".join(["%s"] * len(names)) + ")"
        # The ids of the rows that were new: only they get item index rows.
        self._conflict = (
            f" ON CONFLICT ({quote(ROW_ID_COLUMN)}) DO NOTHING RETURNING {quote(ROW_ID_COLUMN)}"
        )
        self._indexes = table.item_indexes()

    def _index(
        self,
        conn: psycopg.Connection[Any],
        cursor: psycopg.Cursor[Any],
        rows: Sequence[tuple[str, Any]],
    ) -> None:
        """Item index rows for the rows ``cursor``'s INSERT ... RETURNING added."""
        if not self._indexes:
            return
        added = {found[0] for found in cursor.fetchall()}
        # One entry per id: a batch may hold the same event twice (a duplicate delivery).
        by_id = {row_id: row for row_id, row in rows if row_id in added}
        new = [(row_id, row_values(row)) for row_id, row in by_id.items()]
        for index in self._indexes:
            insert_items(conn, index, new)

    def _params(self, row_id: str, row: Any) -> list[Any]:
        values = row_values(row)
        params: list[Any] = []
        for field in self._fields:
            value = values[field.name]
            params.append(
                Jsonb(value, dumps=_dumps) if is_json(field) and value is not None else value
            )
        params.append(row_id)
        return params

    def write(self, rows: Sequence[tuple[str, Any]]) -> None:
        if not rows:
            return
        prepared = [(row_id, self._params(row_id, row)) for row_id, row in rows]
        where = f"{len(rows)} row(s) to {self.table.table_name}"
        try:
            with self.table.database.connection(SinkError, SinkUnavailableError) as conn:
                sql = self._insert + ", ".join([self._marks] * len(prepared)) + self._conflict
                try:
                    with conn.transaction():
                        cursor = conn.execute(sql, [p for _, params in prepared for p in params])
                        self._index(conn, cursor, rows)
                    return
                except psycopg.Error as exc:
                    if not _refuses_rows(exc):
                        raise  # the server cannot take rows now: the worker waits
                rejected: dict[str, str] = {}
                with conn.transaction():
                    for (row_id, params), row in zip(prepared, rows, strict=True):
                        try:
                            with conn.transaction():  # a savepoint per row
                                cursor = conn.execute(
                                    self._insert + self._marks + self._conflict, params
                                )
                                self._index(conn, cursor, [row])
                        except psycopg.Error as exc:
                            if not _refuses_rows(exc):
                                raise
                            rejected[row_id] = " ".join(str(exc).split())
        except SinkError as exc:  # SinkUnavailableError stays one: the worker waits it out
            raise type(exc)(f"writing {where}: {exc}") from exc.__cause__
        if rejected:
            raise RowError(f"PostgreSQL refused {len(rejected)} of {where}", rejected=rejected)

    def close(self) -> None:
        """The database's pool stays open for the process's readers."""


class PostgresReader(SqlTableReader):
    def __init__(self, table: PostgresTable) -> None:
        self.table = table
        self.table_ref = quote(table.table_name)
        fields = {quote(f.name): f for f in table.fields()}
        visible = ", ".join(fields)

        def unnest_items(column: str) -> str:
            field = fields[column]
            inner = ", ".join(f"{quote(f.name)} {postgres_type(f)}" for f in field.fields)
            return f"jsonb_to_recordset({column}) AS _item({inner})"

        self.dialect = SqlDialect(
            quote=quote, all_but=lambda column: visible, unnest_items=unnest_items
        )
        self.indexes = table.item_indexes()
        self.contains_like = True

    def query(self, sql: str, params: dict[str, Any] | None = None) -> QueryResult:
        sql = sql.replace("{table}", self.table_ref).replace("%", "%%")
        sql = _PARAM.sub(r"%(\1)s", sql)
        for attempt in (1, 2):
            try:
                with self.table.database.connection(ReadError) as conn:
                    cursor = conn.execute(sql, params or {})
                    rows = cursor.fetchall()
                    columns = [d.name for d in cursor.description or []]
                return QueryResult(columns=columns, rows=[tuple(r) for r in rows])
            except ReadError as exc:
                # A pooled connection cut while idle (a restart, a failover) fails on its
                # first use; a read is safe to send again, once, on a new connection.
                if attempt == 1 and isinstance(exc.__cause__, psycopg.OperationalError):
                    continue
                raise ReadError(
                    f"query on {self.table.table_name} failed: {exc}"
                ) from exc.__cause__
        raise AssertionError("unreachable")  # pragma: no cover

    def _user_query(self, sql: str, *, read_only: bool, max_rows: int) -> QueryResult:
        # No parameters: psycopg sends the text as it is (no % escapes).
        sql = sql.replace("{table}", self.table_ref)
        try:
            with self.table.database.connection(ReadError) as conn:
                if read_only:
                    conn.execute("SET TRANSACTION READ ONLY")
                # A read goes through a server-side cursor, so rows leave the server only
                # as they are fetched (a write cannot be declared as one).
                cursor = conn.cursor(name="tideflow_user_query") if read_only else conn.cursor()
                with cursor:
                    cursor.execute(sql)
                    columns = [d.name for d in cursor.description or []]
                    # A change without RETURNING answers with its count, as DuckDB does.
                    rows = cursor.fetchmany(max_rows + 1) if columns else [(cursor.rowcount,)]
                conn.commit()
        except ReadError as exc:
            raise ReadError(f"query on {self.table.table_name} failed: {exc}") from exc.__cause__
        return first_rows(columns or ["count"], rows, max_rows)


def _vacuum(conn: psycopg.Connection[Any], tables: list[str]) -> None:
    """VACUUM (outside a transaction) sets the visibility map, so counts are index-only
    scans from the start rather than after autovacuum's next pass (measured at 1,000,000
    rows: a label's total 103 -> 3 ms), and ANALYZE gives the planner the side tables'
    statistics."""
    conn.autocommit = True
    try:
        for name in tables:
            conn.execute(f"VACUUM (ANALYZE) {quote(name)}")
    finally:
        conn.autocommit = False
