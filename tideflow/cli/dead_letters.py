"""``tideflow dead-letters list`` and ``retry``: events that failed too often."""

from __future__ import annotations

from typing import Annotated

import typer

from tideflow.cli.common import FormatOption, StackOption, WideOption, console, emit, open_here
from tideflow.cli.render import OutputFormat, cell_text, cut_table
from tideflow.exceptions import ConfigError


def list_letters(
    stack: StackOption = None,
    limit: Annotated[int, typer.Option(help="Show at most this many.")] = 100,
    fmt: FormatOption = OutputFormat.TABLE,
    wide: WideOption = False,
) -> None:
    """Events that failed too often, newest first, with their last error."""
    project = open_here(stack)
    rows = []
    for consumer in project.consumers():
        for letter in project.dead_letters(consumer.name).list(limit=limit):
            event = letter.event
            rows.append(
                (
                    letter.id,
                    consumer.name,
                    event.file_path,
                    event.version,
                    letter.attempts,
                    letter.error,
                )
            )
    columns = ["id", "consumer", "key", "version", "attempts", "error"]
    if fmt is not OutputFormat.TABLE or wide:
        emit(columns, rows, fmt=fmt, wide=wide, noun="dead letter")
        return
    # One line each: the consumer only when there are several, the error gets the room.
    several = len({row[1] for row in rows}) > 1
    keep = [0, 1, 2, 4, 5] if several else [0, 2, 4, 5]
    headers = [columns[i] for i in keep]
    cells = [[cell_text(row[i]) for i in keep] for row in rows]
    floors = [4, 8, 12, 8, 20] if several else [4, 12, 8, 20]
    caps = [12, 16, 40, 8, 200] if several else [12, 40, 8, 200]
    summary = cut_table(headers, cells, floors, caps, console.width)
    emit(columns, rows, fmt=fmt, wide=False, summary=summary, noun="dead letter")


def retry(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead-letter ids to retry.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Retry every dead letter.")] = False,
    stack: StackOption = None,
) -> None:
    """Send dead letters back for delivery (the running app picks them up)."""
    if not ids and not all_:
        raise ConfigError("name dead-letter ids to retry, or pass --all")
    project = open_here(stack)
    wanted = None if all_ else ids
    count = sum(project.dead_letters(c.name).retry(wanted) for c in project.consumers())
    console.print(f"{count} event(s) sent back for delivery.")
