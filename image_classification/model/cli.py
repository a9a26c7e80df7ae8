"""What the model and train command lines share, in the style of ``tideflow``'s (Typer and
Rich): an error the user can fix is one red line on stderr and exit status 2, and a
traceback never prints local variables (training holds arrays of thousands of numbers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bar or spinner.", show_default=False)
]

stderr = Console(stderr=True)


def command_line(help: str) -> typer.Typer:
    """A Typer app for ``python -m ...`` (so without shell-completion options)."""
    return typer.Typer(
        help=help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
        rich_markup_mode="markdown",
    )


def print_error(message: str) -> None:
    """``message`` as one red error line, however long (a terminal wraps it, a log or a pipe
    keeps it whole)."""
    # Escaped: messages may hold brackets (pip install -e '.[torch]').
    stderr.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str) -> NoReturn:
    """End the command: ``message`` as one red error line, exit status 2."""
    print_error(message)
    raise typer.Exit(2)


def run(
    app: typer.Typer,
    argv: Sequence[str] | None,
    *,
    prog_name: str,
    reported: tuple[type[Exception], ...],
) -> int:
    """Run ``app`` on ``argv`` (default: the process's arguments); its exit status. The
    ``reported`` errors, which say what to fix, end it as ``fail`` does."""
    try:
        app(args=None if argv is None else list(argv), prog_name=prog_name)
    except SystemExit as exit_:  # Typer ends every run with one, 0 included
        code = exit_.code
        return code if isinstance(code, int) else int(code is not None)
    except reported as exc:
        print_error(str(exc))
        return 2
    return 0
