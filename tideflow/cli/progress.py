"""Progress bars and spinners for long commands, only where someone watches a terminal.

``tideflow --quiet ...`` turns them off; so does output that is not a terminal (a pipe,
a file, CI logs), where Rich would otherwise print nothing useful.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = quiet


def progress(console: Console, *, bar: bool = True) -> Progress:
    """A transient progress display: spinner, description, (bar,) count and time."""
    # Imported here: quick commands (status) never show one.
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns: list[ProgressColumn] = [SpinnerColumn(), TextColumn("{task.description}")]
    if bar:
        columns += [BarColumn(), MofNCompleteColumn()]
    else:
        columns.append(TextColumn("{task.completed:,} {task.fields[unit]}"))
    columns.append(TimeElapsedColumn())
    return Progress(
        *columns,
        console=console,
        transient=True,
        disable=_state["quiet"] or not console.is_terminal,
    )
