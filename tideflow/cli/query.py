"""``tideflow query`` and ``export``: a consumer's table, read through ``Project.table``
(in this process, or through the running app when it holds the warehouse file).

Item filters keep the rows having an item (a record of a list column) that matches:
``--item COLUMN.FIELD=VALUE`` (equal, any case; with ``--contains``, containing it). A
row type may declare, as class attributes:

- ``tideflow_summary(record) -> {header: value}`` (a classmethod): the one line that
  ``query --results`` prints per row (without it, the columns that fit the terminal);
- ``tideflow_label = "COLUMN.FIELD"``: the item field that the shortcuts ``--label V``
  (``--item COLUMN.FIELD=V``) and ``--q V`` (the same with ``--contains``) search.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tideflow.cli.common import (
    FormatOption,
    StackOption,
    WideOption,
    console,
    emit,
    errors,
    open_here,
)
from tideflow.cli.progress import progress
from tideflow.cli.render import OutputFormat, summary_table
from tideflow.exceptions import ConfigError
from tideflow.io.strategies import DEFAULT_QUERY_ROWS, MAX_QUERY_ROWS, ItemFilter

if TYPE_CHECKING:
    from tideflow.io.primitive import SinkPrimitive

Summarise = Callable[[dict[str, Any]], Mapping[str, Any]]


class ExportFormat(enum.StrEnum):
    CSV = "csv"
    PARQUET = "parquet"
    JSONL = "jsonl"


ConsumerOption = Annotated[
    str | None,
    typer.Option("--consumer", help="Whose table, when the flow has several consumers."),
]
ItemOption = Annotated[
    str | None,
    typer.Option(
        "--item",
        metavar="COLUMN.FIELD=VALUE",
        help="Only rows having an item (a record in list column COLUMN) whose FIELD is VALUE "
        "(any case).",
    ),
]
ContainsOption = Annotated[
    bool, typer.Option("--contains", help="With --item: the FIELD contains VALUE.")
]
LabelOption = Annotated[
    str | None,
    typer.Option(
        "--label",
        help="Only rows having an item with this label (any case): the item field the row "
        "type names in tideflow_label.",
    ),
]
QOption = Annotated[
    str | None, typer.Option("--q", help="Only rows having an item whose label contains this.")
]


def query(
    sql: Annotated[
        str | None, typer.Argument(help="SQL; {table} names the consumer's table.")
    ] = None,
    results: Annotated[bool, typer.Option("--results", help="Show the latest rows.")] = False,
    item: ItemOption = None,
    contains: ContainsOption = False,
    label: LabelOption = None,
    q: QOption = None,
    limit: Annotated[int, typer.Option(help="With --results: how many rows.")] = 20,
    offset: Annotated[int, typer.Option(help="With --results: skip this many rows.")] = 0,
    write: Annotated[
        bool,
        typer.Option("--write", help="Let the SQL change rows (INSERT, UPDATE, DELETE)."),
    ] = False,
    max_rows: Annotated[
        int,
        typer.Option(
            "--max-rows", help=f"With SQL: show at most this many rows (up to {MAX_QUERY_ROWS:,})."
        ),
    ] = DEFAULT_QUERY_ROWS,
    fmt: FormatOption = OutputFormat.TABLE,
    wide: WideOption = False,
    consumer: ConsumerOption = None,
    stack: StackOption = None,
) -> None:
    """Query a consumer's table (through the running app when it holds the file).

    SQL runs read-only, one statement (SELECT, WITH...), with no access to files; --write
    lets it change rows, never tables. --results prints the newest rows, one line each
    (as the row type summarises it) fitting the terminal; --wide prints every column;
    --format json|jsonl|csv prints data.
    """
    if (sql is None) == (not results):
        raise ConfigError("give either a SQL query or --results")
    project = open_here(stack)
    table = project.consumer(consumer).sink
    reader = project.table(consumer)
    with progress(errors, bar=False) as spinner:
        spinner.add_task("Querying", total=None, unit="rows")
        if sql is not None:
            found = reader.user_query(sql, allow_writes=write, max_rows=max_rows)
        else:
            found = reader.select(
                item=_item_filter(table, item, contains=contains, label=label, q=q),
                order_by=_newest_first(table),
                limit=limit,
                offset=offset,
            )
    summarise: Summarise | None = getattr(table.schema, "tideflow_summary", None)
    summary = None
    if results and fmt is OutputFormat.TABLE and not wide and found.rows and summarise:
        records = found.records()
        summary = summary_table([summarise(r) for r in records], width=console.width)
    emit(found.columns, found.rows, fmt=fmt, wide=wide, summary=summary)
    if found.truncated:
        errors.print(
            f"only the first {max_rows:,} row(s): the query has more (--max-rows, up to "
            f"{MAX_QUERY_ROWS:,}; `tideflow export` writes a whole table)",
            style="yellow",
            highlight=False,
            soft_wrap=True,
        )


def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write (replaced if present).")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="The file's format.")] = (
        ExportFormat.CSV
    ),
    item: ItemOption = None,
    contains: ContainsOption = False,
    label: LabelOption = None,
    q: QOption = None,
    consumer: ConsumerOption = None,
    stack: StackOption = None,
) -> None:
    """Write a consumer's table (newest first) to a CSV, Parquet or JSON-lines file.

    DuckDB writes the file itself (COPY); other warehouses are read page by page.
    """
    project = open_here(stack)
    table = project.consumer(consumer).sink
    chosen = _item_filter(table, item, contains=contains, label=label, q=q)
    reader = project.table(consumer)
    with progress(console, bar=False) as spinner:
        task = spinner.add_task(f"Exporting to {out}", total=None, unit="rows")
        count = reader.export(
            out.resolve(),
            fmt.value,
            item=chosen,
            order_by=_newest_first(table),
            progress=lambda done: spinner.update(task, completed=done),
        )
    console.print(f"{count:,} row(s) written to {out}", highlight=False)


def _newest_first(table: SinkPrimitive) -> str | None:
    """The table's first timestamp column, which ``--results`` and exports sort by."""
    from tideflow.io.schema import Kind

    stamps = (f for f in table.fields() if f.kind is Kind.TIMESTAMP and not f.repeated)
    return next((f.name for f in stamps), None)


def _item_filter(
    table: SinkPrimitive, item: str | None, *, contains: bool, label: str | None, q: str | None
) -> ItemFilter | None:
    """The one filter of ``--item`` (``--contains``), ``--label`` or ``--q``, checked
    against the table's columns."""
    options = (("--item", item), ("--label", label), ("--q", q))
    given = [name for name, value in options if value is not None]
    if len(given) > 1:
        raise ConfigError(f"give one item filter, not {' and '.join(given)}")
    if contains and item is None:
        raise ConfigError("--contains goes with --item COLUMN.FIELD=VALUE")
    if item is not None:
        path, equals, value = item.partition("=")
        if not equals:
            raise ConfigError(f"--item takes COLUMN.FIELD=VALUE, got {item!r}")
        return _checked(table, path, value, contains=contains)
    text = label if label is not None else q
    if text is None:
        return None
    declared: str | None = getattr(table.schema, "tideflow_label", None)
    if declared is None:
        raise ConfigError(
            "--label and --q search the item field that the table's row type names in "
            "tideflow_label, and it names none: use --item COLUMN.FIELD=VALUE"
        )
    return _checked(table, declared, text, contains=q is not None)


def _checked(table: SinkPrimitive, path: str, value: str, *, contains: bool) -> ItemFilter:
    """``path`` (``COLUMN.FIELD``) as a filter, if it is a text field of the records of
    one of the table's list columns."""
    from tideflow.io.schema import Kind

    searchable = [
        f"{f.name}.{sub.name}"
        for f in table.fields()
        if f.repeated and f.kind is Kind.RECORD
        for sub in f.fields
        if sub.kind is Kind.STRING and not sub.repeated
    ]
    if path not in searchable:
        known = ", ".join(searchable) or "none"
        raise ConfigError(f"no item field {path!r} to filter on; the table has: {known}")
    column, _, field = path.partition(".")
    return ItemFilter(column, field, value, contains=contains)
