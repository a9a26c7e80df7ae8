"""Rich renderings of plans and query results."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.tree import Tree

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


def _cell(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


def result_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(*columns, show_lines=False)
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    return table
