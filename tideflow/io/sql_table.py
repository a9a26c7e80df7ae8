"""A table of a SQL warehouse (DuckDB, PostgreSQL): its plan and DDL, written once.

The columns come from the row dataclass (``tideflow.io.schema``) plus the hidden
``_tideflow_row_id`` primary key. ``plan`` compares them with the table's: create it, or
add the columns the dataclass gained (additive changes only) and the item indexes
(``tideflow.io.item_index``) it lacks, or nothing; ``destroy`` drops the table and its
item indexes. An adapter gives its column types (``column_type``), reads its catalog
(``existing_columns``, ``existing_tables``), runs statements (``execute``) and applies
(``migrate``: the schema statements, then what it keeps beside the table).
"""

from __future__ import annotations

from collections.abc import Sequence

from tideflow.io.item_index import ItemIndex, indexes_for
from tideflow.io.primitive import PlanAction, PlanStep, SinkPrimitive
from tideflow.io.schema import ROW_ID_COLUMN, Field, Kind
from tideflow.io.sql import quote


class SqlTable(SinkPrimitive):
    """A table whose row type is ``.options(schema=Row)``, in a SQL warehouse."""

    def column_type(self, field: Field) -> str:
        raise NotImplementedError(f"{type(self).__name__} must implement column_type()")

    def existing_columns(self) -> list[str] | None:
        """The table's columns in order; None when there is no such table."""
        raise NotImplementedError(f"{type(self).__name__} must implement existing_columns()")

    def existing_tables(self, names: Sequence[str]) -> set[str]:
        """Those of the tables ``names`` that exist."""
        raise NotImplementedError(f"{type(self).__name__} must implement existing_tables()")

    def execute(self, statements: Sequence[str]) -> None:
        """Run ``statements`` on one connection, and commit."""
        raise NotImplementedError(f"{type(self).__name__} must implement execute()")

    def migrate(self, step: PlanStep, statements: Sequence[str]) -> None:
        """Make the change ``step`` planned: run the schema ``statements``, then create and
        fill what is kept beside the table."""
        raise NotImplementedError(f"{type(self).__name__} must implement migrate()")

    def item_indexes(self) -> list[ItemIndex]:
        """Side tables that make item filters fast (``tideflow.io.item_index``)."""
        return indexes_for(self.table_name, self.fields())

    def missing_indexes(self) -> list[ItemIndex]:
        indexes = self.item_indexes()
        present = self.existing_tables([index.name for index in indexes]) if indexes else set()
        return [index for index in indexes if index.name not in present]

    def changes(self) -> list[str]:
        """What an existing table lacks besides columns, as plan lines."""
        missing = self.missing_indexes()
        return [f"add item index: {', '.join(i.name for i in missing)}"] if missing else []

    def plan(self) -> PlanStep:
        existing = self.existing_columns()
        changes = self.changes() if existing is not None else []
        return self.table_step([f.name for f in self.fields()], existing, changes)

    def apply(self) -> PlanStep:
        step = self.plan()
        self.migrate(step, self.schema_statements(step))
        return step

    def plan_destroy(self) -> PlanStep:
        present = self.existing_columns() is not None
        return self.step(PlanAction.DELETE if present else PlanAction.NO_CHANGE)

    def destroy(self) -> PlanStep:
        step = self.plan_destroy()
        if step.action is PlanAction.DELETE:
            self.execute(self.drop_statements())
        return step

    def row_id_column(self) -> str:
        return f"{quote(ROW_ID_COLUMN)} {self.column_type(Field(ROW_ID_COLUMN, Kind.STRING))}"

    def create_statements(self) -> list[str]:
        columns = [f"{quote(f.name)} {self.column_type(f)}" for f in self.fields()]
        columns.append(f"{self.row_id_column()} PRIMARY KEY")
        return [f"CREATE TABLE IF NOT EXISTS {quote(self.table_name)} ({', '.join(columns)})"]

    def schema_statements(self, step: PlanStep) -> list[str]:
        """CREATE TABLE, or ALTER TABLE for each column the dataclass gained."""
        if step.action is PlanAction.CREATE:
            return self.create_statements()
        if step.action is not PlanAction.UPDATE:
            return []
        existing = self.existing_columns() or []
        return [
            f"ALTER TABLE {quote(self.table_name)} ADD COLUMN IF NOT EXISTS "
            f"{quote(field.name)} {self.column_type(field)}"
            for field in self.fields()
            if field.name not in existing
        ]

    def drop_statements(self) -> list[str]:
        tables = [index.name for index in self.item_indexes()] + [self.table_name]
        return [f"DROP TABLE IF EXISTS {quote(name)}" for name in tables]
