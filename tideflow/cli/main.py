"""The ``tideflow`` command line: plan, apply, run, destroy, status, dead letters, query."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from dotenv import load_dotenv
from rich.console import Console
from rich.progress import Progress

from tideflow import infra
from tideflow.cli.config import load_config
from tideflow.cli.render import plan_tree, result_table
from tideflow.exceptions import ConfigError, TideflowError
from tideflow.flow import Flow
from tideflow.io.primitive import PlanStep
from tideflow.io.strategies import ItemFilter, Source
from tideflow.runtime.loader import load_flow
from tideflow.runtime.lock import running_info

app = typer.Typer(help="Plan, apply, run and destroy a BuildFlow-style flow.", no_args_is_help=True)
dead_letters_app = typer.Typer(help="List and retry events that failed too often.")
app.add_typer(dead_letters_app, name="dead-letters")

console = Console()
errors = Console(stderr=True)

StackOption = Annotated[
    str | None,
    typer.Option("--stack", help="Stack to use (else $STACK, else the first listed)."),
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Turn tideflow errors into one red line and exit code 2."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TideflowError as exc:
            errors.print(f"[red]error:[/] {exc}", highlight=False, markup=True)
            raise typer.Exit(2) from exc

    return run  # type: ignore[return-value]


class Context:
    """The project, stack and flow a command works on."""

    def __init__(self, stack_name: str | None) -> None:
        self.config = load_config(Path.cwd())
        # The project's .env may choose the stack; the real environment still wins.
        load_dotenv(self.config.project_dir / ".env", override=False)
        self.stack = self.config.stack(stack_name)
        self.home = self.config.activate(self.stack)
        self.flow: Flow = load_flow(self.config.entry_point, self.config.project_dir)
        # The gcp adapters (here and in replica processes) read credentials from the
        # environment, as the tutorial's FlowOptions(gcp_service_account_info=...) intends.
        account_info = self.flow.options.gcp_service_account_info
        if account_info:
            os.environ.setdefault("GCP_SERVICE_ACCOUNT_INFO", account_info)

    @property
    def title(self) -> str:
        return f"[bold]{self.config.project}[/] (stack [cyan]{self.stack.name}[/])"

    def sources(self) -> list[tuple[str, Source]]:
        if not self.flow.consumers:
            raise ConfigError("the flow has no consumers, so it has no event streams")
        return [(c.name, c.source.source()) for c in self.flow.consumers]


@app.callback()
def main(
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Their per-request and per-change lines drown out tideflow's own.
    for chatty in ("httpx", "watchfiles"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not typer.confirm(question, default=False):
        console.print("Nothing done.")
        raise typer.Exit(0)


def _with_progress(label: str, action: Callable[..., list[PlanStep]], flow: Flow) -> list[PlanStep]:
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(label, total=len(flow.primitives()))
        return action(flow, on_step=lambda _: progress.advance(task))


@app.command()
@reports_errors
def plan(stack: StackOption = None) -> None:
    """Show the primitives and what apply would do to each."""
    ctx = Context(stack)
    console.print(plan_tree(ctx.title, infra.plan(ctx.flow)))


@app.command()
@reports_errors
def apply(stack: StackOption = None, yes: YesOption = False) -> None:
    """Create the missing primitives (asks first)."""
    ctx = Context(stack)
    steps = infra.plan(ctx.flow)
    console.print(plan_tree(ctx.title, steps))
    if not any(step.changes for step in steps):
        console.print("[green]No changes.[/] Everything is up to date.")
        return
    _confirm("Apply these changes?", yes)
    done = _with_progress("Applying", infra.apply, ctx.flow)
    changed = sum(step.changes for step in done)
    console.print(f"[green]Applied.[/] {changed} primitive(s) changed.")


@app.command()
@reports_errors
def destroy(stack: StackOption = None, yes: YesOption = False) -> None:
    """Remove every primitive of the flow (asks first)."""
    ctx = Context(stack)
    if running_info(ctx.home) is not None:
        raise ConfigError("`tideflow run` is running on this stack; stop it before destroy")
    steps = infra.plan_destroy(ctx.flow)
    console.print(plan_tree(ctx.title, steps))
    if not any(step.changes for step in steps):
        console.print("Nothing to remove.")
        return
    _confirm("Remove these primitives and their data?", yes)
    done = _with_progress("Destroying", infra.destroy, ctx.flow)
    removed = [s.primitive_id for s in done if s.changes]
    console.print(f"[red]Removed[/] {len(removed)} primitive(s): {', '.join(removed)}")


@app.command()
@reports_errors
def run(
    stack: StackOption = None,
    host: Annotated[str, typer.Option(help="Address the HTTP service listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the HTTP service.")] = 8000,
    replicas: Annotated[
        int | None,
        typer.Option(help="Replicas per consumer (default: CPU count).", min=1),
    ] = None,
    only: Annotated[
        str | None, typer.Option(help="Run only 'service' or only 'consumers'.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    """Apply missing primitives, then serve HTTP and run the consumers until stopped."""
    from tideflow.runtime.runner import FlowRunner, RunOptions

    logging.getLogger().setLevel(log_level.upper())
    ctx = Context(stack)
    options = RunOptions(
        entry_point=ctx.config.entry_point,
        project_dir=ctx.config.project_dir,
        home=ctx.home,
        host=host,
        port=port,
        replicas=replicas,
        only=only,
        log_level=log_level.upper(),
    )
    raise typer.Exit(FlowRunner(ctx.flow, options).run())


@app.command()
@reports_errors
def status(stack: StackOption = None) -> None:
    """Events pending, in flight, done and dead-lettered, per consumer."""
    ctx = Context(stack)
    rows = []
    for name, source in ctx.sources():
        stats = source.stats()
        rows.append((name, stats.pending, stats.in_flight, stats.done, stats.dead_lettered))
    console.print(result_table(["consumer", "pending", "in flight", "done", "dead-lettered"], rows))
    state = "running" if running_info(ctx.home) is not None else "not running"
    console.print(f"tideflow run: {state}")


@dead_letters_app.command("list")
@reports_errors
def dead_letters_list(
    stack: StackOption = None,
    limit: Annotated[int, typer.Option(help="Show at most this many.")] = 100,
) -> None:
    """Events that failed too often, newest first, with their last error."""
    ctx = Context(stack)
    rows = []
    for name, source in ctx.sources():
        for letter in source.dead_letters(limit=limit):
            event = letter.event
            rows.append(
                (
                    letter.id,
                    name,
                    event.file_path,
                    event.generation,
                    letter.attempts,
                    letter.error,
                )
            )
    console.print(result_table(["id", "consumer", "key", "generation", "attempts", "error"], rows))


@dead_letters_app.command("retry")
@reports_errors
def dead_letters_retry(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead-letter ids to retry.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Retry every dead letter.")] = False,
    stack: StackOption = None,
) -> None:
    """Send dead letters back for delivery (the running app picks them up)."""
    if not ids and not all_:
        raise ConfigError("name dead-letter ids to retry, or pass --all")
    ctx = Context(stack)
    count = sum(source.retry_dead_letters(None if all_ else ids) for _, source in ctx.sources())
    console.print(f"{count} event(s) sent back for delivery.")


@app.command()
@reports_errors
def query(
    sql: Annotated[
        str | None, typer.Argument(help="SQL; {table} names the consumer's table.")
    ] = None,
    results: Annotated[bool, typer.Option("--results", help="Show the latest rows.")] = False,
    label: Annotated[
        str | None,
        typer.Option(help="With --results: rows having an item with this label."),
    ] = None,
    limit: Annotated[int, typer.Option(help="With --results: how many rows.")] = 20,
    stack: StackOption = None,
) -> None:
    """Query the warehouse table (through the running app when it holds the file)."""
    if (sql is None) == (not results):
        raise ConfigError("give either a SQL query or --results")
    ctx = Context(stack)
    if not ctx.flow.consumers:
        raise ConfigError("the flow has no consumer, so it has no table to query")
    table = ctx.flow.consumers[0].sink
    order_by, item = None, None
    if results:
        order_by, item = _results_shape(table, label)
    info = running_info(ctx.home)
    if info is not None and info.get("admin_socket"):
        payload = {"sql": sql} if sql else {"order_by": order_by, "limit": limit, "item": item}
        answer = _ask_running(Path(info["admin_socket"]), "/query" if sql else "/select", payload)
        columns, rows = answer["columns"], answer["rows"]
    else:
        reader = table.reader()
        if sql:
            found = reader.query(sql)
        else:
            found = reader.select(
                item=ItemFilter(**item) if item else None,
                order_by=order_by,
                limit=limit,
            )
        columns, rows = found.columns, found.rows
    console.print(result_table(columns, rows))
    console.print(f"{len(rows)} row(s)")


def _results_shape(table: Any, label: str | None) -> tuple[str | None, dict[str, Any] | None]:
    """Newest-first column and label filter derived from the table's schema."""
    from tideflow.io.schema import Kind

    fields = table.fields()
    order_by = next((f.name for f in fields if f.kind is Kind.TIMESTAMP and not f.repeated), None)
    if label is None:
        return order_by, None
    for field in fields:
        labelled = any(sub.name == "label" for sub in field.fields)
        if field.repeated and field.kind is Kind.RECORD and labelled:
            return order_by, {
                "column": field.name,
                "field": "label",
                "value": label,
            }
    raise ConfigError("--label needs a table with a list of records that have a 'label' field")


def _ask_running(sock: Path, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    transport = httpx.HTTPTransport(uds=str(sock))
    try:
        with httpx.Client(transport=transport, base_url="http://tideflow", timeout=60) as client:
            response = client.post(path, json=payload)
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot reach the running app through {sock}: {exc}") from exc
    if response.status_code != 200:
        raise ConfigError(response.json().get("detail", response.text))
    return response.json()
