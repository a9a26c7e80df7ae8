"""BigQuery as the warehouse: a dataset, and tables whose schema comes from a dataclass.

``BigQueryDataset(project_id, dataset_name).options(location="US")`` and
``BigQueryTable(dataset, table_name).options(schema=Row)``. Column types: ``str`` STRING,
``int`` INTEGER, ``float`` FLOAT, ``bool`` BOOLEAN, ``bytes`` BYTES, ``datetime`` TIMESTAMP,
``date`` DATE, nested dataclasses RECORD, ``list[X]`` REPEATED; every column is NULLABLE
(or REPEATED), plus the row id column ``_tideflow_row_id`` (STRING, REQUIRED).

Apply creates what is missing. On an existing table it adds the columns, and the fields
of RECORD columns, that the dataclass gained, in one schema update (additive only); a
column whose type or mode differs is reported in the plan and left alone. Destroy deletes
the table, and the dataset only when it is empty (tables the flow does not manage are
named instead). Writes and reads: see ``tideflow.io.gcp.bigquery_io``.

Settings: ``project_id`` (else ``GCP_PROJECT_ID``), credentials and
``BIGQUERY_EMULATOR_HOST``, see ``tideflow.io.gcp.clients``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from google.api_core import exceptions as api_exceptions
from google.cloud import bigquery

from tideflow.exceptions import PrimitiveError
from tideflow.io.gcp.bigquery_io import API_RETRY, BigQueryReader, BigQuerySink
from tideflow.io.gcp.clients import bigquery_client, resolve_project
from tideflow.io.gcp.errors import translated
from tideflow.io.primitive import PlanAction, PlanStep, Primitive, SinkPrimitive
from tideflow.io.schema import ROW_ID_COLUMN, Field, Kind, schema_of

_TYPES = {
    Kind.STRING: "STRING",
    Kind.INTEGER: "INTEGER",
    Kind.FLOAT: "FLOAT",
    Kind.BOOLEAN: "BOOLEAN",
    Kind.BYTES: "BYTES",
    Kind.TIMESTAMP: "TIMESTAMP",
    Kind.DATE: "DATE",
    Kind.RECORD: "RECORD",
}
# BigQuery reports either the legacy or the GoogleSQL name of a type.
_SYNONYMS = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}


def schema_field(field: Field) -> bigquery.SchemaField:
    return bigquery.SchemaField(
        field.name,
        _TYPES[field.kind],
        mode="REPEATED" if field.repeated else "NULLABLE",
        fields=[schema_field(f) for f in field.fields],
    )


def table_schema(fields: Sequence[Field]) -> list[bigquery.SchemaField]:
    """The BigQuery schema of a row dataclass's fields, with the row id column."""
    row_id = bigquery.SchemaField(ROW_ID_COLUMN, "STRING", mode="REQUIRED")
    return [*(schema_field(f) for f in fields), row_id]


def merge_schema(
    existing: Sequence[bigquery.SchemaField],
    wanted: Sequence[bigquery.SchemaField],
    *,
    prefix: str = "",
) -> tuple[list[bigquery.SchemaField], list[str], list[str]]:
    """``existing`` plus what ``wanted`` adds; the added names and the conflicts found."""
    merged = list(existing)
    added: list[str] = []
    conflicts: list[str] = []
    # Column names are case-insensitive in BigQuery.
    index = {f.name.lower(): i for i, f in enumerate(merged)}
    for field in wanted:
        name = f"{prefix}{field.name}"
        position = index.get(field.name.lower())
        if position is None:
            # BigQuery adds only NULLABLE or REPEATED columns to an existing table.
            merged.append(_nullable(field) if field.mode == "REQUIRED" else field)
            added.append(name)
            continue
        current = merged[position]
        if _shape(current) != _shape(field):
            have, want = " ".join(_shape(current)), " ".join(_shape(field))
            conflicts.append(f"{name} is {have}, the schema says {want}")
        elif field.field_type == "RECORD":
            fields, more, clashes = merge_schema(current.fields, field.fields, prefix=f"{name}.")
            added += more
            conflicts += clashes
            if more:
                merged[position] = bigquery.SchemaField(
                    current.name,
                    current.field_type,
                    mode=current.mode,
                    description=current.description,
                    fields=fields,
                )
    return merged, added, conflicts


def _nullable(field: bigquery.SchemaField) -> bigquery.SchemaField:
    return bigquery.SchemaField(field.name, field.field_type, mode="NULLABLE", fields=field.fields)


def _shape(field: bigquery.SchemaField) -> tuple[str, str]:
    kind = field.field_type.upper()
    repeated = "REPEATED" if field.mode == "REPEATED" else "single"
    return _SYNONYMS.get(kind, kind), repeated


class BigQueryDataset(Primitive):
    """A BigQuery dataset; its client is created on first use."""

    def __init__(self, project_id: str | None = None, dataset_name: str = "") -> None:
        if not dataset_name:
            raise PrimitiveError("BigQueryDataset needs a dataset_name")
        self.project_id = resolve_project(project_id)
        self.dataset_name = dataset_name
        self.location = "US"
        self._client: bigquery.Client | None = None
        self._lock = threading.Lock()

    def _option_names(self) -> frozenset[str]:
        return frozenset({"location"})

    @property
    def dataset_ref(self) -> str:
        return f"{self.project_id}.{self.dataset_name}"

    def client(self) -> bigquery.Client:
        with self._lock:
            if self._client is None:
                with translated(
                    resource=f"dataset {self.dataset_ref}",
                    action="connect to BigQuery for",
                    error=PrimitiveError,
                ):
                    self._client = bigquery_client(self.project_id)
            return self._client

    def primitive_id(self) -> str:
        return f"bigquery-dataset:{self.dataset_ref}"

    def _tables(self) -> list[str] | None:
        """Names of the dataset's tables; None when the dataset does not exist."""
        with translated(
            resource=f"dataset {self.dataset_ref}",
            action="look up",
            error=PrimitiveError,
            permission="bigquery.datasets.get and bigquery.tables.list",
        ):
            try:
                self.client().get_dataset(self.dataset_ref, retry=API_RETRY)
            except api_exceptions.NotFound:
                return None
            return [
                t.table_id for t in self.client().list_tables(self.dataset_ref, retry=API_RETRY)
            ]

    def plan(self) -> PlanStep:
        if self._tables() is None:
            return self.step(PlanAction.CREATE, f"location {self.location}")
        return self.step(PlanAction.NO_CHANGE)

    def plan_destroy(self) -> PlanStep:
        tables = self._tables()
        if tables is None:
            return self.step(PlanAction.NO_CHANGE, "already gone")
        return self.step(PlanAction.DELETE, "once its tables are gone")

    def apply(self) -> PlanStep:
        step = self.plan()
        if step.action is PlanAction.CREATE:
            dataset = bigquery.Dataset(self.dataset_ref)
            dataset.location = self.location
            with translated(
                resource=f"dataset {self.dataset_ref}",
                action="create",
                error=PrimitiveError,
                permission="bigquery.datasets.create",
            ):
                self.client().create_dataset(dataset, exists_ok=True, retry=API_RETRY)
        return step

    def destroy(self) -> PlanStep:
        step = self.plan_destroy()
        if step.action is not PlanAction.DELETE:
            return step
        # Checked first: deleting a non-empty dataset would need delete_contents, which
        # would also drop tables this flow does not manage.
        left = self._tables()
        if left:
            raise PrimitiveError(
                f"dataset {self.dataset_ref} still holds tables this flow does not manage "
                f"({', '.join(sorted(left))}); delete them first, or the dataset with "
                f"`bq rm -r {self.dataset_ref}`"
            )
        with translated(
            resource=f"dataset {self.dataset_ref}",
            action="delete",
            error=PrimitiveError,
            permission="bigquery.datasets.delete",
        ):
            self.client().delete_dataset(self.dataset_ref, not_found_ok=True, retry=API_RETRY)
        return step


class BigQueryTable(SinkPrimitive):
    """A table in a ``BigQueryDataset``; set its row type with ``.options(schema=Row)``."""

    def __init__(self, dataset: BigQueryDataset, table_name: str) -> None:
        self.dataset = dataset
        self.table_name = table_name
        self.schema: type | None = None

    def _option_names(self) -> frozenset[str]:
        return frozenset({"schema"})

    @property
    def table_ref(self) -> str:
        return f"{self.dataset.dataset_ref}.{self.table_name}"

    def primitive_id(self) -> str:
        return f"bigquery-table:{self.table_ref}"

    def depends_on(self) -> tuple[BigQueryDataset, ...]:
        return (self.dataset,)

    def fields(self) -> tuple[Field, ...]:
        if self.schema is None:
            raise PrimitiveError(
                f"table {self.table_name} has no schema: declare it with "
                f"BigQueryTable(...).options(schema=YourRowDataclass)"
            )
        return schema_of(self.schema)

    def _table(self) -> bigquery.Table | None:
        with translated(
            resource=f"table {self.table_ref}",
            action="look up",
            error=PrimitiveError,
            permission="bigquery.tables.get",
        ):
            try:
                return self.dataset.client().get_table(self.table_ref, retry=API_RETRY)
            except api_exceptions.NotFound:
                return None

    def _changes(self, table: bigquery.Table) -> tuple[list[bigquery.SchemaField], PlanStep]:
        merged, added, conflicts = merge_schema(table.schema, table_schema(self.fields()))
        details = []
        if added:
            details.append(f"add columns: {', '.join(added)}")
        if conflicts:
            details.append(f"not changed (additive changes only): {'; '.join(conflicts)}")
        action = PlanAction.UPDATE if added else PlanAction.NO_CHANGE
        return merged, self.step(action, "; ".join(details))

    def plan(self) -> PlanStep:
        table = self._table()
        return self._create_step() if table is None else self._changes(table)[1]

    def plan_destroy(self) -> PlanStep:
        if self._table() is None:
            return self.step(PlanAction.NO_CHANGE, "already gone")
        return self.step(PlanAction.DELETE)

    def apply(self) -> PlanStep:
        table = self._table()
        client = self.dataset.client()
        if table is None:
            with translated(
                resource=f"table {self.table_ref}",
                action="create",
                error=PrimitiveError,
                permission="bigquery.tables.create",
            ):
                new = bigquery.Table(self.table_ref, schema=table_schema(self.fields()))
                client.create_table(new, exists_ok=True, retry=API_RETRY)
            return self._create_step()
        merged, step = self._changes(table)
        if step.action is PlanAction.UPDATE:
            table.schema = merged
            with translated(
                resource=f"table {self.table_ref}",
                action="add columns to",
                error=PrimitiveError,
                permission="bigquery.tables.update",
            ):
                # The table's etag travels along: a concurrent schema change fails this one.
                client.update_table(table, ["schema"], retry=API_RETRY)
        return step

    def _create_step(self) -> PlanStep:
        names = ", ".join(f.name for f in self.fields())
        return self.step(PlanAction.CREATE, f"columns: {names}")

    def destroy(self) -> PlanStep:
        step = self.plan_destroy()
        if step.action is PlanAction.DELETE:
            with translated(
                resource=f"table {self.table_ref}",
                action="delete",
                error=PrimitiveError,
                permission="bigquery.tables.delete",
            ):
                self.dataset.client().delete_table(
                    self.table_ref, not_found_ok=True, retry=API_RETRY
                )
        return step

    def sink(self) -> BigQuerySink:
        return BigQuerySink(
            self.dataset.client,
            table_ref=self.table_ref,
            fields=self.fields(),
            location=self.dataset.location,
        )

    def reader(self) -> BigQueryReader:
        return BigQueryReader(
            self.dataset.client, table_ref=self.table_ref, location=self.dataset.location
        )
