"""DuckDB as the warehouse: a dataset is a database file, a table is a table in it.

The schema comes from the row dataclass (records -> STRUCT, lists -> LIST); apply
creates the table and adds columns the dataclass gained (additive changes only). Each
table has a hidden ``_tideflow_row_id`` primary key and writes use
``ON CONFLICT DO NOTHING``, so a redelivered event never adds a second row. A batch is
written in one transaction. Reads and writes in the run process share one database
instance, so the results page reads while the consumer writes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from tideflow.exceptions import PrimitiveError, SinkError
from tideflow.home import state_path
from tideflow.io.duckdb.connection import close_shared, shared_connection
from tideflow.io.primitive import PlanAction, PlanStep, Primitive, SinkPrimitive
from tideflow.io.schema import ROW_ID_COLUMN, Field, Kind, row_values, schema_of
from tideflow.io.sql import SqlDialect, SqlTableReader
from tideflow.io.strategies import Sink
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


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def column_type(field: Field) -> str:
    if field.kind is Kind.RECORD:
        inner = ", ".join(f"{quote(f.name)} {column_type(f)}" for f in field.fields)
        base = f"STRUCT({inner})"
    else:
        base = _TYPES[field.kind]
    return f"{base}[]" if field.repeated else base


class DuckDBDataset(Primitive):
    """A DuckDB database file (relative paths live in the stack's state directory)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)

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
        self.connection()
        return step

    def destroy(self) -> PlanStep:
        step = self.plan_destroy()
        close_shared(self.path)
        for suffix in ("", ".wal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        return step

    def connection(self) -> duckdb.DuckDBPyConnection:
        return shared_connection(self.path)

    def reader(self) -> DuckDBReader:
        return DuckDBReader(self, table_ref="")


class DuckDBTable(SinkPrimitive):
    """A table in a ``DuckDBDataset``; set its row type with ``.options(schema=Row)``."""

    def __init__(self, dataset: DuckDBDataset, table_name: str) -> None:
        self.dataset = dataset
        self.table_name = table_name
        self.schema: type | None = None

    def _option_names(self) -> frozenset[str]:
        return frozenset({"schema"})

    def primitive_id(self) -> str:
        return f"duckdb-table:{self.dataset._path}/{self.table_name}"

    def depends_on(self) -> tuple[DuckDBDataset, ...]:
        return (self.dataset,)

    def fields(self) -> tuple[Field, ...]:
        if self.schema is None:
            raise PrimitiveError(
                f"table {self.table_name} has no schema: declare it with "
                f"DuckDBTable(...).options(schema=YourRowDataclass)"
            )
        return schema_of(self.schema)

    def _existing_columns(self) -> list[str] | None:
        if not self.dataset.path.exists():
            return None
        rows = (
            self.dataset.connection()
            .cursor()
            .execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "ORDER BY ordinal_position",
                [self.table_name],
            )
            .fetchall()
        )
        return [r[0] for r in rows] or None

    def _missing_fields(self, existing: list[str]) -> list[Field]:
        return [f for f in self.fields() if f.name not in existing]

    def plan(self) -> PlanStep:
        existing = self._existing_columns()
        if existing is None:
            names = ", ".join(f.name for f in self.fields())
            return self.step(PlanAction.CREATE, f"columns: {names}")
        missing = self._missing_fields(existing)
        if missing:
            names = ", ".join(f.name for f in missing)
            return self.step(PlanAction.UPDATE, f"add columns: {names}")
        return self.step(PlanAction.NO_CHANGE)

    def plan_destroy(self) -> PlanStep:
        present = self._existing_columns() is not None
        return self.step(PlanAction.DELETE if present else PlanAction.NO_CHANGE)

    def apply(self) -> PlanStep:
        step = self.plan()
        cursor = self.dataset.connection().cursor()
        table = quote(self.table_name)
        if step.action is PlanAction.CREATE:
            columns = [f"{quote(f.name)} {column_type(f)}" for f in self.fields()]
            columns.append(f"{quote(ROW_ID_COLUMN)} VARCHAR PRIMARY KEY")
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(columns)})")
        elif step.action is PlanAction.UPDATE:
            for field in self._missing_fields(self._existing_columns() or []):
                cursor.execute(
                    f"ALTER TABLE {table} ADD COLUMN {quote(field.name)} {column_type(field)}"
                )
        return step

    def destroy(self) -> PlanStep:
        step = self.plan_destroy()
        if step.action is PlanAction.DELETE:
            self.dataset.connection().cursor().execute(
                f"DROP TABLE IF EXISTS {quote(self.table_name)}"
            )
        return step

    def sink(self) -> DuckDBSink:
        return DuckDBSink(self)

    def reader(self) -> DuckDBReader:
        return DuckDBReader(self.dataset, table_ref=quote(self.table_name))


class DuckDBSink(Sink):
    _write_lock = threading.Lock()

    def __init__(self, table: DuckDBTable) -> None:
        self.table = table
        self._names = [f.name for f in table.fields()]
        self._columns = ", ".join(quote(n) for n in (*self._names, ROW_ID_COLUMN))
        self._row_marks = "(" + ", ".join("?" * (len(self._names) + 1)) + ")"

    def write(self, rows: Sequence[tuple[str, Any]]) -> None:
        if not rows:
            return
        params: list[Any] = []
        for row_id, row in rows:
            values = row_values(row)
            params.extend(values[name] for name in self._names)
            params.append(row_id)
        # One multi-row statement is atomic and about twice as fast as executemany.
        sql = (
            f"INSERT INTO {quote(self.table.table_name)} ({self._columns}) VALUES "
            f"{', '.join([self._row_marks] * len(rows))} ON CONFLICT DO NOTHING"
        )
        cursor = self.table.dataset.connection().cursor()
        # DuckDB commits optimistically; serialising writers in the process avoids
        # spurious conflicts between concurrent batches.
        with self._write_lock:
            try:
                cursor.execute(sql, params)
            except duckdb.Error as exc:
                raise SinkError(
                    f"writing {len(rows)} row(s) to {self.table.table_name}: {exc}"
                ) from exc


class DuckDBReader(SqlTableReader):
    dialect = SqlDialect(
        quote=quote,
        all_but=lambda column: f"* EXCLUDE ({column})",
        unnest_items=lambda column: f"UNNEST({column}) AS _items(_item)",
    )

    def __init__(self, dataset: DuckDBDataset, *, table_ref: str) -> None:
        self.dataset = dataset
        self.table_ref = table_ref

    def query(self, sql: str, params: dict[str, Any] | None = None) -> QueryResult:
        if self.table_ref:
            sql = sql.replace("{table}", self.table_ref)
        try:
            result = self.dataset.connection().cursor().execute(sql, params or {})
            rows = result.fetchall()
        except duckdb.Error as exc:
            raise SinkError(f"query failed: {exc}") from exc
        columns = [d[0] for d in result.description or []]
        return QueryResult(columns=columns, rows=rows)
