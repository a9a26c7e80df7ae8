"""Rich renderings of plans and query results."""

from __future__ import annotations

import csv
import datetime
import enum
import json
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from rich import box
from rich.table import Table
from rich.tree import Tree

from tideflow.io.export import csv_value, json_value
from tideflow.io.primitive import PlanAction, PlanStep

_STYLES = {
    PlanAction.CREATE: "green",
    PlanAction.UPDATE: "yellow",
    PlanAction.DELETE: "red",
    PlanAction.NO_CHANGE: "dim",
}


def _add(tree: Tree, step: PlanStep) -> None:
    style = _STYLES[step.action]
    detail = f" [dim]{step.detail}[/]" if step.detail else ""
    branch = tree.add(
        f"[{style}]{step.action.value:>9}[/]  [bold]{step.kind}[/] {step.primitive_id}{detail}"
    )
    for child in step.children:
        _add(branch, child)


def plan_tree(title: str, steps: Sequence[PlanStep]) -> Tree:
    tree = Tree(title)
    for step in steps:
        _add(tree, step)
    return tree


def cell_text(value: Any) -> str:
    """A value as table text: nested values as JSON, timestamps to the second."""
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


# ----------------------------------------------------------------- query output formats


class OutputFormat(enum.StrEnum):
    """``--format``: a table for people, or every column as data."""

    TABLE = "table"
    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"


def write_records(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: OutputFormat, out: TextIO
) -> None:
    """Every column of every row as ``json`` (one array), ``jsonl`` or ``csv``, as
    ``tideflow export`` writes them (in CSV, nested values are JSON text)."""
    if fmt is OutputFormat.CSV:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([csv_value(v) for v in row] for row in rows)
        return
    records = [dict(zip(columns, map(json_value, row), strict=True)) for row in rows]
    if fmt is OutputFormat.JSONL:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        json.dump(records, out, ensure_ascii=False, indent=2)
        out.write("\n")


_GAP = 3  # what SIMPLE_HEAD puts between columns
_FLOOR = 10  # no column is cut narrower than this (or its header, if shorter)
_CAP = 40  # nor shown wider than this when cut to the terminal


def fit_widths(naturals: Sequence[int], floors: Sequence[int], available: int) -> list[int]:
    """Column widths summing (with gaps) to at most ``available``: the widest give way first.

    Columns are never made narrower than their floor; the caller drops columns that do
    not fit at their floors (``fitting_columns``).
    """
    widths = list(naturals)
    budget = available - _GAP * max(len(widths) - 1, 0)
    excess = sum(widths) - budget
    while excess > 0:
        shrinkable = [i for i, w in enumerate(widths) if w > floors[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    return widths


def fitting_columns(columns: Sequence[str], width: int) -> int:
    """How many of the first columns fit ``width`` at their narrowest (at least one)."""
    used, count = 0, 0
    for name in columns:
        used += min(len(name), _FLOOR) + (_GAP if count else 0)
        if used > width:
            break
        count += 1
    return max(count, 1)


def cut_table(
    headers: Sequence[str],
    cells: list[list[str]],
    floors: Sequence[int],
    caps: Sequence[int],
    width: int,
    styles: Sequence[str] | None = None,
) -> Table:
    naturals = [
        min(max([len(h)] + [len(row[i]) for row in cells]), caps[i]) for i, h in enumerate(headers)
    ]
    widths = fit_widths(naturals, [min(f, n) for f, n in zip(floors, naturals, strict=True)], width)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for i, header in enumerate(headers):
        table.add_column(
            header,
            style=styles[i] if styles else "",
            no_wrap=True,
            overflow="ellipsis",
            width=widths[i],
        )
    for row in cells:
        table.add_row(*row)
    return table


def line_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, wide: bool, width: int = 80
) -> Table:
    """All columns; one line per row cut with "…" to ``width``, or in full when ``wide``.

    Cut to the terminal, the caller passes only the columns that fit (``fitting_columns``).
    """
    cells = [[cell_text(v) for v in row[: len(columns)]] for row in rows]
    if wide:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for name in columns:
            table.add_column(name, no_wrap=True)
        for row in cells:
            table.add_row(*row)
        return table
    return _fitted(columns, cells, width)


def _fitted(
    headers: Sequence[str], cells: list[list[str]], width: int, styles: Sequence[str] | None = None
) -> Table:
    floors = [min(len(name), _FLOOR) for name in headers]
    return cut_table(headers, cells, floors, [_CAP] * len(headers), width, styles)


def _short(value: Any) -> str:
    """A summary's cell: timestamps to the minute in UTC (``11-22 10:05``)."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC)
        return value.strftime("%m-%d %H:%M")
    return cell_text(value)


def summary_table(summaries: Sequence[Mapping[str, Any]], *, width: int = 80) -> Table:
    """One short line per row from what its row type's ``tideflow_summary`` returned
    (header -> value), the first column in bold, fitted to ``width``."""
    headers = list(summaries[0]) if summaries else []
    cells = [[_short(summary.get(header)) for header in headers] for summary in summaries]
    styles = ["bold"] + [""] * (len(headers) - 1)
    return _fitted(headers, cells, width, styles)
