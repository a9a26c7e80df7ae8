"""``tideflow status``: each consumer's events, answered by the running app when it runs."""

from __future__ import annotations

from tideflow.cli.common import StackOption, console, open_here
from tideflow.cli.render import line_table


def status(stack: StackOption = None) -> None:
    """Events pending, in flight and done (as the queue tells), and failed, per consumer.

    While `tideflow run` runs, it answers (the flow is not even imported here)."""
    project = open_here(stack)
    rows = [tuple("?" if v is None else v for v in row) for row in project.status()]
    columns = ["consumer", "pending", "in flight", "done", "failed"]
    console.print(line_table(columns, rows, wide=False, width=console.width))
    state = "running" if project.is_running else "not running"
    console.print(f"tideflow run: {state}")
