"""DuckDB as the warehouse: a dataset is a database file, a table is a table in it.

The schema comes from the row dataclass (records -> STRUCT, lists -> LIST); apply
creates the table and adds columns the dataclass gained (additive changes only). Each
table has a hidden ``_tideflow_row_id`` primary key and writes use
``ON CONFLICT DO NOTHING``, so a redelivered event never adds a second row. A batch is
written in one transaction. Reads and writes in the run process share one database
instance, so the results page reads while the consumer writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb

from tideflow.exceptions import (
    PrimitiveError,
    ReadError,
    RowError,
    SinkError,
    SinkUnavailableError,
)
from tideflow.home import state_path
from tideflow.io.duckdb.connection import (
    brief_connection,
    close_shared,
    shared_connection,
    temp_folder,
)
from tideflow.io.duckdb.item_index import backfill_sql, create_sql, insert_sql
from tideflow.io.export import check_format, export_file, place_export, sql_string
from tideflow.io.item_index import ItemIndex
from tideflow.io.primitive import PlanAction, PlanStep, Primitive
from tideflow.io.schema import ROW_ID_COLUMN, Field, Kind, row_values
from tideflow.io.sql import SqlDialect, SqlTableReader, first_rows, quote
from tideflow.io.sql_table import SqlTable
from tideflow.io.strategies import ItemFilter, Sink
from tideflow.types import QueryResult

_TYPES = {
    Kind.STRING: "VARCHAR",
    Kind.INTEGER: "BIGINT",
    Kind.FLOAT: "DOUBLE",
    Kind.BOOLEAN: "BOOLEAN",
    Kind.BYTES: "BLOB",
    Kind.TIMESTAMP: "TIMESTAMPTZ",
    Kind.DATE: "DATE",
}


def duckdb_type(field: Field) -> str:
    if field.kind is Kind.RECORD:
        inner = ", ".join(f"{quote(f.name)} {duckdb_type(f)}" for f in field.fields)
        base = f"STRUCT({inner})"
    else:
        base = _TYPES[field.kind]
    return f"{base}[]" if field.repeated else base


@contextlib.contextmanager
def transaction(cursor: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN ... COMMIT, rolled back on an error, which is raised as it was. A failed
    COMMIT (the disk is full) has already ended the transaction: the ROLLBACK's own "no
    transaction is active" must not replace the real cause."""
    cursor.execute("BEGIN TRANSACTION")
    try:
        yield
        cursor.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            cursor.execute("ROLLBACK")
        raise


class DuckDBDataset(Primitive):
    """A DuckDB database file (relative paths live in the stack's state directory).

    With ``keep_open`` (the default) the run process holds the file open and everything
    in it shares that connection; without, each read and write opens and closes it
    (BuildFlow's behaviour, so other code in the process may open the file too).
    """

    def __init__(self, path: str | os.PathLike[str], *, keep_open: bool = True) -> None:
        self._path = Path(path)
        self.keep_open = keep_open

    @property
    def path(self) -> Path:
        return state_path(self._path)

    def primitive_id(self) -> str:
        return f"duckdb-dataset:{self._path}"

    def plan(self) -> PlanStep:
        action = PlanAction.NO_CHANGE if self.path.exists() else PlanAction.CREATE
        return self.step(action, str(self.path))

    def plan_destroy(self) -> PlanStep:
        action = PlanAction.DELETE if self.path.exists() else PlanAction.NO_CHANGE
        return self.step(action, str(self.path))

    def apply(self) -> PlanStep:
        step = self.plan()
        with self.cursor():
            pass
        return step

    def destroy(self) -> PlanStep:
        step = self.plan_destroy()
        close_shared(self.path)
        for suffix in ("", ".wal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        return step

    def connection(self) -> duckdb.DuckDBPyConnection:
        """The process's shared connection (``keep_open`` datasets)."""
        return shared_connection(self.path)

    @contextlib.contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor for one read or write (a brief connection without ``keep_open``)."""
        if self.keep_open:
            yield self.connection().cursor()
        else:
            with brief_connection(self.path) as connection:
                yield connection

    def reader(self) -> DuckDBReader:
        return DuckDBReader(self, table_ref="")


class DuckDBTable(SqlTable):
    """A table in a ``DuckDBDataset``; set its row type with ``.options(schema=Row)``.

    BuildFlow's signature works too: ``DuckDBTable(database="app.duckdb", table="rows")``
    (a relative ``database`` is relative to the working directory, as in BuildFlow, and
    the file is opened only while a write or read runs). Without a schema, the table takes
    the row dataclass its consumer returns. ``.database`` and ``.table`` are the file's
    path and the table's name, for the app's own queries. Such a table holds only the
    row's columns, as in BuildFlow (``SELECT *`` shows nothing else): its row ids, which
    keep a redelivered event from adding a row, live in ``<table>__tideflow_row_ids``.
    """

    def __init__(
        self,
        dataset: DuckDBDataset | str | os.PathLike[str] | None = None,
        table_name: str | None = None,
        *,
        database: str | os.PathLike[str] | None = None,
        table: str | None = None,
    ) -> None:
        if isinstance(dataset, str | os.PathLike):  # BuildFlow's DuckDBTable(database, table)
            dataset, database = None, dataset
        if database is not None:
            if dataset is not None:
                raise PrimitiveError("DuckDBTable takes a dataset or a database, not both")
            dataset = DuckDBDataset(Path.cwd() / Path(database).expanduser(), keep_open=False)
        name = table_name if table_name is not None else table
        if dataset is None or not name:
            raise PrimitiveError(
                "DuckDBTable needs a dataset and a table name: DuckDBTable(dataset, 'rows') "
                "or DuckDBTable(database='app.duckdb', table='rows')"
            )
        self.dataset = dataset
        self.table_name = name
        self.schema: type | None = None
        self.row_ids_apart = database is not None

    @property
    def row_ids_table(self) -> str:
        return f"{self.table_name}__tideflow_row_ids"

    @property
    def database(self) -> str:
        """The database file's path (BuildFlow's ``DuckDBTable.database``)."""
        return str(self.dataset.path)

    @property
    def table(self) -> str:
        """The table's name (BuildFlow's ``DuckDBTable.table``)."""
        return self.table_name

    def primitive_id(self) -> str:
        return f"duckdb-table:{self.dataset._path}/{self.table_name}"

    def depends_on(self) -> tuple[DuckDBDataset, ...]:
        return (self.dataset,)

    def column_type(self, field: Field) -> str:
        return duckdb_type(field)

    def existing_columns(self) -> list[str] | None:
        if not self.dataset.path.exists():
            return None
        with self.dataset.cursor() as cursor:
            rows = cursor.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "ORDER BY ordinal_position",
                [self.table_name],
            ).fetchall()
        return [r[0] for r in rows] or None

    def existing_tables(self, names: Sequence[str]) -> set[str]:
        if not self.dataset.path.exists():
            return set()
        with self.dataset.cursor() as cursor:
            found = cursor.execute("SELECT table_name FROM information_schema.tables").fetchall()
        return {row[0] for row in found} & set(names)

    def item_indexes(self) -> list[ItemIndex]:
        """A BuildFlow-style table keeps only its own columns, so it has no item index."""
        return [] if self.row_ids_apart else super().item_indexes()

    def create_statements(self) -> list[str]:
        if not self.row_ids_apart:
            return super().create_statements()
        columns = ", ".join(f"{quote(f.name)} {duckdb_type(f)}" for f in self.fields())
        return [
            f"CREATE TABLE IF NOT EXISTS {quote(self.row_ids_table)} "
            f"({self.row_id_column()} PRIMARY KEY)",
            f"CREATE TABLE IF NOT EXISTS {quote(self.table_name)} ({columns})",
        ]

    def drop_statements(self) -> list[str]:
        return [*super().drop_statements(), f"DROP TABLE IF EXISTS {quote(self.row_ids_table)}"]

    def execute(self, statements: Sequence[str]) -> None:
        with self.dataset.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    def migrate(self, step: PlanStep, statements: Sequence[str]) -> None:
        with self.dataset.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
            for index in self.missing_indexes():
                with transaction(cursor):
                    cursor.execute(create_sql(index, duckdb_type))
                    cursor.execute(backfill_sql(index))

    def sink(self) -> DuckDBSink:
        return DuckDBSink(self)

    def reader(self) -> DuckDBReader:
        indexes = self.item_indexes() if self.schema is not None else []
        return DuckDBReader(
            self.dataset,
            table_ref=quote(self.table_name),
            row_id_column=not self.row_ids_apart,
            indexes=indexes,
        )

    def sibling(self, table_name: str, *, schema: type) -> DuckDBTable:
        return DuckDBTable(self.dataset, table_name).options(schema=schema)


# Errors of the moment, not of the rows: the same write may succeed later.
_UNAVAILABLE = (
    duckdb.IOException,
    duckdb.ConnectionException,
    duckdb.TransactionException,
    duckdb.OutOfMemoryException,
    duckdb.InterruptException,
)


class DuckDBSink(Sink):
    _write_lock = threading.Lock()

    def __init__(self, table: DuckDBTable) -> None:
        self.table = table
        self._names = [f.name for f in table.fields()]
        apart = table.row_ids_apart
        self._columns = ", ".join(quote(n) for n in self._names)
        if not apart:
            self._columns += f", {quote(ROW_ID_COLUMN)}"
        marks = len(self._names) + (0 if apart else 1)
        self._row_marks = "(" + ", ".join("?" * marks) + ")"
        self._indexes = table.item_indexes()

    def write(self, rows: Sequence[tuple[str, Any]]) -> None:
        if not rows:
            return
        try:
            self._insert(rows)
        except _UNAVAILABLE as exc:
            raise self._unavailable(rows, exc) from exc
        except duckdb.Error as exc:
            if len(rows) == 1:
                raise self._refused(rows, exc) from exc
            # Find the rows DuckDB refuses, so only their events fail.
            self._insert_one_by_one(rows, exc)

    def _insert(self, rows: Sequence[tuple[str, Any]]) -> None:
        # DuckDB commits optimistically; serialising writers in the process avoids
        # spurious conflicts between concurrent batches.
        with self._write_lock, self.table.dataset.cursor() as cursor:
            if self.table.row_ids_apart:
                self._insert_apart(cursor, rows)
            elif not self._indexes:
                cursor.execute(*self._statement(rows, with_ids=True))
            else:
                self._insert_indexed(cursor, rows)

    def _insert_indexed(
        self, cursor: duckdb.DuckDBPyConnection, rows: Sequence[tuple[str, Any]]
    ) -> None:
        """The rows, and in the same transaction the item index rows of those that were new."""
        sql, params = self._statement(rows, with_ids=True)
        with transaction(cursor):
            returned = cursor.execute(f"{sql} RETURNING {quote(ROW_ID_COLUMN)}", params)
            inserted = {r[0] for r in returned.fetchall()}
            by_id = {row_id: row_values(row) for row_id, row in rows}
            for index in self._indexes:
                items = [item for row_id in inserted for item in index.rows(row_id, by_id[row_id])]
                if items:
                    cursor.execute(
                        insert_sql(index, len(items)), [v for item in items for v in item]
                    )

    def _statement(
        self, rows: Sequence[tuple[str, Any]], *, with_ids: bool
    ) -> tuple[str, list[Any]]:
        params: list[Any] = []
        for row_id, row in rows:
            values = row_values(row)
            params.extend(values[name] for name in self._names)
            if with_ids:
                params.append(row_id)
        # One multi-row statement is atomic and about twice as fast as executemany.
        sql = (
            f"INSERT INTO {quote(self.table.table_name)} ({self._columns}) VALUES "
            f"{', '.join([self._row_marks] * len(rows))}"
        )
        return (f"{sql} ON CONFLICT DO NOTHING" if with_ids else sql), params

    def _insert_apart(
        self, cursor: duckdb.DuckDBPyConnection, rows: Sequence[tuple[str, Any]]
    ) -> None:
        """Row ids into their own table, and in the same transaction the rows whose id
        was new (a redelivered event's row is skipped)."""
        ids = quote(self.table.row_ids_table)
        with transaction(cursor):
            marks = ", ".join(["(?)"] * len(rows))
            new = cursor.execute(
                f"INSERT INTO {ids} VALUES {marks} ON CONFLICT DO NOTHING RETURNING *",
                [row_id for row_id, _ in rows],
            ).fetchall()
            fresh = {found[0] for found in new}
            todo = [row for row in rows if row[0] in fresh]
            if todo:
                cursor.execute(*self._statement(todo, with_ids=False))

    def _insert_one_by_one(self, rows: Sequence[tuple[str, Any]], first: duckdb.Error) -> None:
        refused: dict[str, str] = {}
        for row in rows:
            try:
                self._insert([row])
            except _UNAVAILABLE as exc:  # not this row's fault: the whole batch waits
                raise self._unavailable(rows, exc) from exc
            except duckdb.Error as exc:
                refused[row[0]] = str(exc)
        if len(refused) == len(rows):
            raise self._refused(rows, first) from first
        if refused:
            raise RowError(
                f"{self.table.table_name} refused {len(refused)} of {len(rows)} row(s)",
                rejected=refused,
            )

    def _unavailable(self, rows: Sequence[tuple[str, Any]], exc: duckdb.Error) -> SinkError:
        return SinkUnavailableError(f"writing {len(rows)} row(s) to {self.table.table_name}: {exc}")

    def _refused(self, rows: Sequence[tuple[str, Any]], exc: duckdb.Error) -> SinkError:
        return SinkError(f"writing {len(rows)} row(s) to {self.table.table_name}: {exc}")


class DuckDBReader(SqlTableReader):
    dialect = SqlDialect(
        quote=quote,
        name="duckdb",
        all_but=lambda column: f"* EXCLUDE ({column})",
        unnest_items=lambda column: f"UNNEST({column}) AS _items(_item)",
    )

    def __init__(
        self,
        dataset: DuckDBDataset,
        *,
        table_ref: str,
        row_id_column: bool = True,
        indexes: Sequence[ItemIndex] = (),
    ) -> None:
        self.dataset = dataset
        self.table_ref = table_ref
        self.indexes = list(indexes)
        if not row_id_column:  # a BuildFlow-style table keeps its row ids apart
            self.dialect = dataclasses.replace(self.dialect, all_but=lambda column: "*")

    def _expand(self, sql: str) -> str:
        return sql.replace("{table}", self.table_ref) if self.table_ref else sql

    def query(self, sql: str, params: dict[str, Any] | None = None) -> QueryResult:
        try:
            with self.dataset.cursor() as cursor:
                result = cursor.execute(self._expand(sql), params or {})
                return QueryResult(columns=_columns(result), rows=result.fetchall())
        except duckdb.Error as exc:
            raise ReadError(f"query failed: {exc}") from exc

    def _user_query(self, sql: str, *, read_only: bool, max_rows: int) -> QueryResult:
        try:
            with self.dataset.cursor() as cursor:
                cursor.execute("BEGIN TRANSACTION READ ONLY" if read_only else "BEGIN TRANSACTION")
                try:
                    result = cursor.execute(self._expand(sql))
                    # Rows stream from DuckDB: only the ones kept are ever built here.
                    found = first_rows(_columns(result), result.fetchmany(max_rows + 1), max_rows)
                except BaseException:
                    cursor.execute("ROLLBACK")
                    raise
                cursor.execute("ROLLBACK" if read_only else "COMMIT")
        except duckdb.Error as exc:
            raise ReadError(f"query failed: {exc}") from exc
        return found

    def export(
        self,
        path: Path,
        fmt: str,
        *,
        item: ItemFilter | None = None,
        order_by: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """DuckDB's ``COPY (SELECT ...) TO`` into its temp folder (the only one its
        connections may write), then the file is moved to ``path``."""
        check_format(fmt)
        columns = None
        if fmt == "csv":
            # Nested columns as JSON text, the same as the paged export writes them.
            described = self.query("DESCRIBE SELECT * FROM {table}")
            parts = []
            for name, kind, *_ in described.rows:
                if name == ROW_ID_COLUMN:
                    continue
                nested = "STRUCT" in kind or kind.endswith("]") or kind.startswith("MAP")
                parts.append(f"to_json({quote(name)}) AS {quote(name)}" if nested else quote(name))
            columns = ", ".join(parts)
        sql, params = self.select_sql(item=item, order_by=order_by, columns=columns)
        options = "FORMAT csv, HEADER" if fmt == "csv" else f"FORMAT {fmt.replace('jsonl', 'json')}"
        with export_file(path) as target:
            try:
                with self.dataset.cursor() as cursor:
                    staged = temp_folder(cursor) / f"tideflow-export-{uuid.uuid4().hex}.{fmt}"
                    try:
                        copy = (
                            f"COPY ({self._expand(sql)}) TO {sql_string(str(staged))} ({options})"
                        )
                        (count,) = cursor.execute(copy, params).fetchone() or (0,)
                        place_export(staged, target)
                    finally:
                        staged.unlink(missing_ok=True)
            except duckdb.Error as exc:
                raise ReadError(f"export failed: {exc}") from exc
        if progress is not None:
            progress(int(count))
        return int(count)


def _columns(result: duckdb.DuckDBPyConnection) -> list[str]:
    return [d[0] for d in result.description or []]
