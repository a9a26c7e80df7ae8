"""What the commands share: the consoles, one-line errors, the common options, the
project they work on, and rows printed as a table or as data."""

from __future__ import annotations

import enum
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console, RenderableType
from rich.markup import escape

from tideflow.cli.render import OutputFormat, fitting_columns, line_table, write_records
from tideflow.exceptions import TideflowError
from tideflow.project import Project, open_project

console = Console()
errors = Console(stderr=True)


StackOption = Annotated[
    str | None,
    typer.Option("--stack", help="Stack to use (else $STACK, else the first listed)."),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        help="table (fits the terminal), json, jsonl or csv (every column; nested as JSON).",
    ),
]
WideOption = Annotated[
    bool, typer.Option("--wide", help="With the table format: every column, nothing cut.")
]


class LogLevel(enum.StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


LogLevelOption = Annotated[LogLevel, typer.Option(case_sensitive=False, help="Log level.")]

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Turn tideflow errors into one red line and exit code 2."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TideflowError as exc:
            # One line however long (a terminal wraps it; a log or a pipe keeps it whole),
            # escaped: messages may hold brackets (pip install -e '.[gcp]').
            errors.print(
                f"[red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True
            )
            raise typer.Exit(2) from exc

    return run  # type: ignore[return-value]


def open_here(stack: str | None) -> Project:
    """The project in the current folder, on ``stack``."""
    return open_project(Path.cwd(), stack=stack)


def title(project: Project) -> str:
    return f"[bold]{project.config.project}[/] (stack [cyan]{project.stack.name}[/])"


def confirm(question: str, yes: bool) -> None:
    """Go on when ``yes`` or when the user says so; otherwise stop with "Nothing done."."""
    if yes:
        return
    if not typer.confirm(question, default=False):
        console.print("Nothing done.")
        raise typer.Exit(0)


def emit(
    columns: list[str],
    rows: list[Any],
    *,
    fmt: OutputFormat,
    wide: bool,
    summary: RenderableType | None = None,
    noun: str = "row",
) -> None:
    """Rows as a table fitting the terminal (``summary`` when given), or as data."""
    if fmt is not OutputFormat.TABLE:
        write_records(columns, rows, fmt, sys.stdout)
        return
    if wide:
        # As wide as the table needs: a pager (less -S) or a wide terminal shows it whole.
        Console(width=100_000).print(line_table(columns, rows, wide=True))
        console.print(f"{len(rows)} {noun}(s)", style="dim")
        return
    hidden = 0
    if summary is None:
        shown = fitting_columns(columns, console.width)
        hidden = len(columns) - shown
        summary = line_table(columns[:shown], rows, wide=False, width=console.width)
    console.print(summary)
    note = f"; {hidden} more column(s): --wide or --format json shows them" if hidden else ""
    console.print(f"{len(rows)} {noun}(s){note}", style="dim", highlight=False)
