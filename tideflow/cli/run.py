"""``tideflow run``: the service and the consumers, until stopped."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from tideflow.cli.common import LogLevel, LogLevelOption, StackOption, open_here
from tideflow.runtime.options import RunOptions, RunPart


def run(
    stack: StackOption = None,
    # From the environment too: a container image sets them once, for every command it runs.
    host: Annotated[
        str, typer.Option(help="Address the HTTP service listens on.", envvar="TIDEFLOW_HOST")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port of the HTTP service.", envvar="TIDEFLOW_PORT")
    ] = 8000,
    replicas: Annotated[
        int | None,
        typer.Option(
            help="Replicas per consumer; the start of one that autoscales (default: CPU "
            "count, or its min_replicas).",
            min=1,
        ),
    ] = None,
    only: Annotated[
        RunPart | None, typer.Option(help="Run only the service or only the consumers.")
    ] = None,
    log_level: LogLevelOption = LogLevel.INFO,
) -> None:
    """Apply missing primitives, then serve HTTP and run the consumers until stopped."""
    from tideflow.runtime.runner import FlowRunner

    logging.getLogger().setLevel(log_level.value)
    project = open_here(stack)
    options = RunOptions(
        entry_point=project.config.entry_point,
        project_dir=project.config.project_dir,
        home=project.home,
        host=host,
        port=port,
        replicas=replicas,
        only=only,
        log_level=log_level.value,
    )
    raise typer.Exit(FlowRunner(project.flow, options).run())
