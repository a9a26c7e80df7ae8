"""Rich renderings of plans and query results."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import functools
import json
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from rich import box
from rich.table import Table
from rich.tree import Tree

from tideflow.io.primitive import PlanAction, PlanStep
from tideflow.io.schema import Field, Kind

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


def render_cell(value: Any) -> str:
    """A value as table text: nested values as JSON, timestamps to the second."""
    return _cell(value)


def _cell(value: Any) -> str:
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


def result_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    return table


# ----------------------------------------------------------------- query output formats

FORMATS = ("table", "json", "jsonl", "csv")


def _plain(value: Any) -> Any:
    """A JSON-ready value: timestamps as ISO 8601, nested lists and records kept."""
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def write_records(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, out: TextIO
) -> None:
    """Every column of every row as ``json`` (one array), ``jsonl`` or ``csv``.

    In CSV, nested values (lists, records) are JSON text.
    """
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                json.dumps(_plain(v), ensure_ascii=False)
                if isinstance(v, (list, dict))
                else _plain(v)
                for v in row
            )
        return
    records = [dict(zip(columns, (_plain(v) for v in row), strict=True)) for row in rows]
    if fmt == "jsonl":
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        json.dump(records, out, ensure_ascii=False, indent=2)
        out.write("\n")


def _short_time(value: Any) -> str:
    if isinstance(value, str):  # through the running app's socket, timestamps are ISO text
        try:
            value = datetime.datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC)
        return value.strftime("%m-%d %H:%M")
    return _cell(value)


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
    cells = [[_cell(v) for v in row[: len(columns)]] for row in rows]
    if wide:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for name in columns:
            table.add_column(name, no_wrap=True)
        for row in cells:
            table.add_row(*row)
        return table
    floors = [min(len(name), _FLOOR) for name in columns]
    return cut_table(columns, cells, floors, [_CAP] * len(columns), width)


def _top_item(items: Any, record: Field) -> str:
    """``"tabby 87.1%"``: the first item's first text field and its first number."""
    if not items:
        return ""
    first = items[0] if isinstance(items, list) else items
    if not isinstance(first, dict):
        return _cell(first)
    text = next((first.get(f.name) for f in record.fields if f.kind is Kind.STRING), None)
    score = next((first.get(f.name) for f in record.fields if f.kind is Kind.FLOAT), None)
    if isinstance(score, float) and 0.0 <= score <= 1.0:
        return f"{text} {score * 100:.1f}%"
    return f"{text} {score}" if score is not None else str(text)


def _short_id(value: Any) -> str:
    """``efficientnet_lite0@a1b2c3d4e5f6/onnxruntime/v1`` -> ``efficientnet_lite0``."""
    return _cell(value).split("/", 1)[0].split("@", 1)[0]


@dataclasses.dataclass(frozen=True)
class _SummaryColumn:
    header: str
    render: Callable[[dict[str, Any]], str]
    style: str = ""
    width: int | None = None
    max_width: int | None = None


def _reads(name: str, show: Callable[[Any], str]) -> Callable[[dict[str, Any]], str]:
    return lambda record: show(record.get(name))


def _summary_columns(fields: Sequence[Field], columns: Sequence[str]) -> list[_SummaryColumn]:
    """Which columns a one-line-per-row summary shows, chosen from the schema.

    The name (first text column with "name" in it, else the first text column), the first
    list of records as its top item, a status, the other ``*_id`` text columns shortened,
    and the first timestamp.
    """
    present = [f for f in fields if f.name in columns]
    texts = [f for f in present if f.kind is Kind.STRING and not f.repeated]
    name = next((f for f in texts if "name" in f.name), texts[0] if texts else None)
    listed = next((f for f in present if f.repeated and f.kind is Kind.RECORD), None)
    ids = [f for f in texts if f.name.endswith("_id") and f is not name and f is not texts[0]]
    stamp = next((f for f in present if f.kind is Kind.TIMESTAMP and not f.repeated), None)
    chosen: list[_SummaryColumn] = []
    if name is not None:
        chosen.append(_SummaryColumn(name.name, _reads(name.name, _cell), "bold", max_width=40))
    if listed is not None:
        chosen.append(
            _SummaryColumn(
                f"top {listed.fields[0].name}" if listed.fields else listed.name,
                _reads(listed.name, functools.partial(_top_item, record=listed)),
                max_width=24,
            )
        )
    chosen.append(_SummaryColumn("status", lambda r: _cell(r.get("status", "done")), width=6))
    for field in ids:
        chosen.append(
            _SummaryColumn(
                field.name.removesuffix("_id"),
                _reads(field.name, _short_id),
                "dim",
                max_width=18,
            )
        )
    if stamp is not None:
        chosen.append(
            _SummaryColumn(f"{stamp.name} UTC", _reads(stamp.name, _short_time), "dim", width=11)
        )
    return chosen


def summary_table(
    fields: Sequence[Field],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    width: int = 80,
) -> Table:
    """One short line per row that fits ``width`` (80 columns and up; ``--wide`` shows all)."""
    chosen = _summary_columns(fields, columns)
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    cells = [[column.render(record) for column in chosen] for record in records]
    floors = [column.width or 8 for column in chosen]
    caps = [column.width or column.max_width or _CAP for column in chosen]
    styles = [column.style for column in chosen]
    return cut_table([c.header for c in chosen], cells, floors, caps, width, styles)
