"""The ``tideflow`` command line: its commands, one module per concern.

The commands import the flow, the runtime and the adapters (FastAPI, provider SDKs)
only when they need them: ``tideflow status`` asks a running app and stays fast.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from tideflow.cli import dead_letters, infra, query, replay, run, status
from tideflow.cli.common import LogLevel, LogLevelOption, reports_errors
from tideflow.cli.progress import set_quiet

app = typer.Typer(help="Plan, apply, run and destroy a BuildFlow-style flow.", no_args_is_help=True)
dead_letters_app = typer.Typer(help="List and retry events that failed too often.")
app.add_typer(dead_letters_app, name="dead-letters")

for command in (
    infra.plan,
    infra.apply,
    infra.destroy,
    run.run,
    status.status,
    replay.replay,
    query.query,
    query.export,
):
    app.command()(reports_errors(command))
dead_letters_app.command("list")(reports_errors(dead_letters.list_letters))
dead_letters_app.command("retry")(reports_errors(dead_letters.retry))


@app.callback()
def main(
    log_level: LogLevelOption = LogLevel.INFO,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="No progress bars or spinners (never shown when not a terminal)."
        ),
    ] = False,
) -> None:
    set_quiet(quiet)
    logging.basicConfig(
        level=log_level.value,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Their per-request and per-change lines drown out tideflow's own.
    for chatty in ("httpx", "watchfiles", "botocore", "boto3"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
