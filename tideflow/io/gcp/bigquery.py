"""BigQuery as the warehouse: a dataset, and tables whose schema comes from a dataclass.

``BigQueryDataset(project_id, dataset_name).options(location="US")`` and
``BigQueryTable(dataset, table_name).options(schema=Row)``. Column types: ``str`` STRING,
``int`` INTEGER, ``float`` FLOAT, ``bool`` BOOLEAN, ``bytes`` BYTES, ``datetime`` TIMESTAMP,
``date`` DATE, nested dataclasses RECORD, ``list[X]`` REPEATED; every column is NULLABLE
(or REPEATED), plus the row id column ``_tideflow_row_id`` (STRING, REQUIRED).

Layout, so that reads scan little: tables are partitioned by day on their first top-level
TIMESTAMP column (``partition_by``; ingestion time when there is none) and clustered on
their ``*_id`` columns (``cluster_by``; the row id column when there is none). The app's
table is therefore partitioned by ``upload`` and clustered by ``image_id``; its failure
log by ``event_time`` and ``event_id``. Both options can be set explicitly
(``.options(partition_by="col", cluster_by=["a", "b"])``); they apply at creation only
(BigQuery cannot re-partition a table), and a plan names any difference.

Apply creates what is missing. On an existing table it adds the columns, and the fields
of RECORD columns, that the dataclass gained, in one schema update (additive only); a
column whose type or mode differs is reported in the plan and left alone. Destroy deletes
the table, and the dataset only when it is empty (tables the flow does not manage are
named instead). Writes and reads: see ``tideflow.io.gcp.bigquery_io``.

Settings: ``project_id`` (else ``GCP_PROJECT_ID``), credentials and
``BIGQUERY_EMULATOR_HOST``, from ``settings`` (``tideflow.io.gcp.settings``; the
environment's when not given).
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from google.api_core import exceptions as api_exceptions
from google.cloud import bigquery

from tideflow.exceptions import PrimitiveError, ReadError, TideflowError
from tideflow.home import make_private_dir, state_path
from tideflow.io.errors import Case, Outcome, one_line
from tideflow.io.gcp.bigquery_io import API_RETRY, BigQueryReader, BigQuerySink
from tideflow.io.gcp.clients import bigquery_client
from tideflow.io.gcp.errors import admin, describe, translated
from tideflow.io.gcp.settings import BIGQUERY_EMULATOR_ENV, GcpSettings
from tideflow.io.options import OptionCheck, text
from tideflow.io.primitive import PlanAction, PlanStep, Primitive, ProcessLocal, SinkPrimitive
from tideflow.io.schema import ROW_ID_COLUMN, Field, Kind

logger = logging.getLogger("tideflow.gcp")

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

# BigQuery's streaming inserts keep using a deleted table for some minutes after a table
# of the same name is created again: rows sent then can land in the deleted table while
# insertAll answers OK. destroy notes (in the stack's state directory) when it deleted a
# table; apply will not create that name again sooner than this.
RECREATE_AFTER_SECONDS = 600.0
DELETED_TABLES_FILE = "bigquery-deleted-tables.json"


def _deleted_tables() -> dict[str, float]:
    try:
        found = json.loads(state_path(DELETED_TABLES_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _note_deleted(table_ref: str) -> None:
    now = time.time()
    recent = {
        ref: when for ref, when in _deleted_tables().items() if now - when < RECREATE_AFTER_SECONDS
    }
    recent[table_ref] = now
    path = state_path(DELETED_TABLES_FILE)
    make_private_dir(path.parent)
    path.write_text(json.dumps(recent))


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


class BigQueryDataset(ProcessLocal, Primitive):
    """A BigQuery dataset; its client is created on first use."""

    process_local = ("_client",)
    option_checks: ClassVar[Mapping[str, OptionCheck]] = {"location": text}

    def __init__(
        self,
        project_id: str | None = None,
        dataset_name: str = "",
        *,
        settings: GcpSettings | None = None,
    ) -> None:
        if not dataset_name:
            raise PrimitiveError("BigQueryDataset needs a dataset_name")
        self.settings = settings or GcpSettings.from_environ()
        self.project_id = self.settings.project(project_id)
        self.dataset_name = dataset_name
        self.location = "US"
        self._found_location: str | None = None
        self._client: bigquery.Client | None = None
        self._lock = threading.Lock()

    @property
    def dataset_ref(self) -> str:
        return f"{self.project_id}.{self.dataset_name}"

    def client(self) -> bigquery.Client:
        with self._lock:
            if self._client is None:
                with admin("connect to BigQuery for", f"dataset {self.dataset_ref}"):
                    self._client = bigquery_client(self.project_id, self.settings)
            return self._client

    def primitive_id(self) -> str:
        return f"bigquery-dataset:{self.dataset_ref}"

    def _exists(self, *, error: type[TideflowError] = PrimitiveError) -> bool:
        """Whether the dataset exists; notes its real location when it does."""
        with translated(
            resource=f"dataset {self.dataset_ref}",
            action="look up",
            error=error,
            permission="bigquery.datasets.get",
            cases={api_exceptions.NotFound: None},
        ):
            found = self.client().get_dataset(self.dataset_ref, retry=API_RETRY)
            self._found_location = found.location
            return True
        return False

    def _tables(self) -> list[str] | None:
        """Names of the dataset's tables; None when the dataset does not exist."""
        if not self._exists():
            return None
        with admin("list the tables of", f"dataset {self.dataset_ref}", "bigquery.tables.list"):
            return [
                t.table_id for t in self.client().list_tables(self.dataset_ref, retry=API_RETRY)
            ]

    def job_location(self) -> str:
        """Where queries on this dataset run: its real location, read from the dataset once
        (a dataset cannot move), so that commands which never plan (``tideflow query``,
        ``status``) follow a dataset in another location too; the declared one while the
        dataset does not exist."""
        if self._found_location is None:
            self._exists(error=ReadError)
        return self._found_location or self.location

    def plan(self) -> PlanStep:
        if self._tables() is None:
            return self.step(PlanAction.CREATE, f"location {self.location}")
        found = self._found_location
        if found and found.upper() != self.location.upper():
            # A dataset cannot move. Queries and inserts must name its real location, or
            # every read fails; so follow it, and say so.
            detail = (
                f"is in {found}, not {self.location} as declared: left there (a dataset "
                f"cannot move); reads and writes go to {found}"
            )
            logger.warning("%s %s", self.dataset_ref, detail)
            self.location = found
            return self.step(PlanAction.NO_CHANGE, detail)
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
            with admin("create", f"dataset {self.dataset_ref}", "bigquery.datasets.create"):
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
        with admin("delete", f"dataset {self.dataset_ref}", "bigquery.datasets.delete"):
            self.client().delete_dataset(self.dataset_ref, not_found_ok=True, retry=API_RETRY)
        return step


def _column_name(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return None
    return "must be a TIMESTAMP or DATE column's name"


def _column_names(value: object) -> str | None:
    if value is None or (
        isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
    ):
        return None
    return "must be a list of up to 4 column names"


class BigQueryTable(SinkPrimitive):
    """A table in a ``BigQueryDataset``; set its row type with ``.options(schema=Row)``."""

    option_checks: ClassVar[Mapping[str, OptionCheck]] = {
        **SinkPrimitive.option_checks,
        "partition_by": _column_name,
        "cluster_by": _column_names,
    }

    def __init__(
        self, dataset: BigQueryDataset, table_name: str, *, settings: GcpSettings | None = None
    ) -> None:
        self.settings = settings or GcpSettings.from_environ()
        self.dataset = dataset
        self.table_name = table_name
        self.schema: type | None = None
        self.partition_by: str | None = None
        self.cluster_by: Sequence[str] | None = None

    def partitioning(self) -> bigquery.TimePartitioning:
        """Daily partitions on ``partition_by``, else the first top-level TIMESTAMP column."""
        column = self.partition_by
        if column is None:
            column = next(
                (
                    f.name
                    for f in self.fields()
                    if f.kind in (Kind.TIMESTAMP, Kind.DATE) and not f.repeated
                ),
                None,
            )
        return bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY, field=column)

    def clustering(self) -> list[str]:
        """``cluster_by``, else the top-level ``*_id`` STRING columns (up to 4), else row id."""
        if self.cluster_by is not None:
            return list(self.cluster_by)
        ids = [
            f.name
            for f in self.fields()
            if f.kind is Kind.STRING and not f.repeated and f.name.endswith("_id")
        ]
        return ids[:4] or [ROW_ID_COLUMN]

    @property
    def table_ref(self) -> str:
        return f"{self.dataset.dataset_ref}.{self.table_name}"

    def primitive_id(self) -> str:
        """``project.dataset.table``, a table reference for SQL as in BuildFlow's
        ``f"SELECT * FROM {table.primitive_id()}"``."""
        return self.table_ref

    def depends_on(self) -> tuple[BigQueryDataset, ...]:
        return (self.dataset,)

    def _table(self) -> bigquery.Table | None:
        gone: Mapping[Case, Outcome] = {api_exceptions.NotFound: None}
        with admin("look up", f"table {self.table_ref}", "bigquery.tables.get", cases=gone):
            return self.dataset.client().get_table(self.table_ref, retry=API_RETRY)
        return None

    def _changes(self, table: bigquery.Table) -> tuple[list[bigquery.SchemaField], PlanStep]:
        merged, added, conflicts = merge_schema(table.schema, table_schema(self.fields()))
        details = []
        layout = self._layout_difference(table)
        if layout:
            details.append(f"not changed (set at creation only): {layout}")
        if added:
            details.append(f"add columns: {', '.join(added)}")
        if conflicts:
            details.append(f"not changed (additive changes only): {'; '.join(conflicts)}")
        action = PlanAction.UPDATE if added else PlanAction.NO_CHANGE
        return merged, self.step(action, "; ".join(details))

    def _layout_difference(self, table: bigquery.Table) -> str:
        wanted, found = self.partitioning(), table.time_partitioning
        differences = []
        if found is None or (found.field, found.type_) != (wanted.field, wanted.type_):
            have = (
                "none" if found is None else f"{found.type_} on {found.field or 'ingestion time'}"
            )
            differences.append(
                f"partitioned {have}, wanted {wanted.type_} on {wanted.field or 'ingestion time'}"
            )
        if list(table.clustering_fields or []) != self.clustering():
            differences.append(
                f"clustered on {table.clustering_fields or 'nothing'}, wanted {self.clustering()}"
            )
        return "; ".join(differences)

    def plan(self) -> PlanStep:
        table = self._table()
        return self._create_step() if table is None else self._changes(table)[1]

    def plan_destroy(self) -> PlanStep:
        if self._table() is None:
            return self.step(PlanAction.NO_CHANGE, "already gone")
        return self.step(PlanAction.DELETE)

    def _refuse_recent_name(self) -> None:
        deleted = _deleted_tables().get(self.table_ref)
        if deleted is None or time.time() - deleted >= RECREATE_AFTER_SECONDS:
            return
        after = datetime.datetime.fromtimestamp(deleted + RECREATE_AFTER_SECONDS, datetime.UTC)
        raise PrimitiveError(
            f"table {self.table_ref} was deleted {time.time() - deleted:.0f}s ago by "
            "`tideflow destroy`; BigQuery's streaming inserts can keep sending rows to the "
            "deleted table for some minutes after a table of the same name is created, and "
            f"those rows would be lost. Apply again after {after:%H:%M:%S} UTC, or use "
            "another table name"
        )

    def apply(self) -> PlanStep:
        table = self._table()
        client = self.dataset.client()
        if table is None:
            self._refuse_recent_name()
            with admin("create", f"table {self.table_ref}", "bigquery.tables.create"):
                new = bigquery.Table(self.table_ref, schema=table_schema(self.fields()))
                new.time_partitioning = self.partitioning()
                new.clustering_fields = self.clustering()
                client.create_table(new, exists_ok=True, retry=API_RETRY)
            self.await_streaming([f.name for f in self.fields()])
            return self._create_step()
        merged, step = self._changes(table)
        if step.action is PlanAction.UPDATE:
            known = {f.name for f in table.schema}
            table.schema = merged
            with admin("add columns to", f"table {self.table_ref}", "bigquery.tables.update"):
                # The table's etag travels along: a concurrent schema change fails this one.
                client.update_table(table, ["schema"], retry=API_RETRY)
            # Top-level columns only: a field added inside a RECORD is probed by its record.
            self.await_streaming(
                [f.name for f in merged if f.name not in known]
                or [f.name for f in merged if f.field_type == "RECORD"]
            )
        return step

    def await_streaming(
        self,
        columns: Sequence[str],
        *,
        timeout: float = 300.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """Return once BigQuery's streaming inserts see this table with ``columns``.

        A table just created, re-created or altered is not at once visible to streaming:
        inserts answer 404 or refuse the new columns for a while (minutes, and rows of a
        re-created table can even go to the deleted one). Apply runs before any consumer
        starts, so waiting here holds the consumers. The probe is a row BigQuery must
        refuse (its row id is not a string): it names the columns with null values, so
        "no such field" means the new schema has not arrived, a refusal for the row id
        means it has, and nothing is ever stored. Under ``BIGQUERY_EMULATOR_HOST`` it is
        skipped (bqemulator would store the probe and has no such delay).
        """
        if self.settings.bigquery_emulator_host:
            logger.info(
                "%s: %s is set: not waiting for streaming inserts to see the table",
                self.table_ref,
                BIGQUERY_EMULATOR_ENV,
            )
            return
        waited, pause = 0.0, 1.0
        while (missing := self._unseen_by_streaming(columns)) is not None:
            if waited >= timeout:
                raise PrimitiveError(
                    f"BigQuery's streaming inserts still {missing} for {self.table_ref} after "
                    f"{waited:.0f}s. If a table of this name was deleted in the last minutes, "
                    "streaming keeps sending rows to the deleted one for a while: wait, or "
                    "use another table name; then apply again"
                )
            logger.info("%s: streaming inserts %s; waiting %.0fs", self.table_ref, missing, pause)
            (sleep or time.sleep)(pause)
            waited += pause
            pause = min(pause * 2, 30.0)

    def _unseen_by_streaming(self, columns: Sequence[str]) -> str | None:
        """What streaming inserts do not see yet of the table (one probe), or None."""
        probe: dict[str, Any] = {name: None for name in columns}
        probe[ROW_ID_COLUMN] = {"tideflow_probe": True}
        try:
            errors = self.dataset.client().insert_rows_json(
                self.table_ref, [probe], retry=API_RETRY
            )
        except api_exceptions.NotFound as exc:
            return f"does not see the table yet ({describe(exc)})"
        # Refused for its row id (or stored by a backend that ignores the id's type): seen.
        if errors and "no such field" in str(errors).lower():
            return f"refused the new columns ({one_line(str(errors), limit=200)})"
        return None

    def _create_step(self) -> PlanStep:
        names = ", ".join(f.name for f in self.fields())
        partition = self.partitioning().field or "ingestion time"
        return self.step(
            PlanAction.CREATE,
            f"columns: {names}; partitioned by day on {partition}, clustered by "
            f"{', '.join(self.clustering())}",
        )

    def destroy(self) -> PlanStep:
        step = self.plan_destroy()
        if step.action is PlanAction.DELETE:
            with admin("delete", f"table {self.table_ref}", "bigquery.tables.delete"):
                self.dataset.client().delete_table(
                    self.table_ref, not_found_ok=True, retry=API_RETRY
                )
            _note_deleted(self.table_ref)
        return step

    def sink(self) -> BigQuerySink:
        return BigQuerySink(self.dataset.client, table_ref=self.table_ref, fields=self.fields())

    def reader(self) -> BigQueryReader:
        return BigQueryReader(
            self.dataset.client, table_ref=self.table_ref, location=self.dataset.job_location
        )

    def sibling(self, table_name: str, *, schema: type) -> BigQueryTable:
        # Layout options are the sibling's own (derived from its schema).
        return BigQueryTable(self.dataset, table_name, settings=self.settings).options(
            schema=schema
        )
