"""The ``tideflow`` command line: plan, apply, run, destroy, status, dead letters, replay,
query."""

from __future__ import annotations

import datetime
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from dotenv import load_dotenv
from rich.console import Console
from rich.markup import escape

from tideflow.cli.config import load_config
from tideflow.cli.progress import progress, set_quiet
from tideflow.cli.render import (
    FORMATS,
    cut_table,
    fitting_columns,
    line_table,
    plan_tree,
    render_cell,
    summary_table,
    write_records,
)
from tideflow.exceptions import ConfigError, TideflowError
from tideflow.io.strategies import DEFAULT_QUERY_ROWS, MAX_QUERY_ROWS
from tideflow.runtime.admin_client import ask_running
from tideflow.runtime.lock import running_info

# The flow, the runtime and the adapters (FastAPI, provider SDKs) are imported by the
# commands that need them: `tideflow status` asks a running app and stays fast.
if TYPE_CHECKING:
    from tideflow.consumers import Consumer
    from tideflow.flow import Flow
    from tideflow.io.primitive import PlanStep

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
            # One line however long (a terminal wraps it; a log or a pipe keeps it whole),
            # escaped: messages may hold brackets (pip install -e '.[gcp]').
            errors.print(
                f"[red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True
            )
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

    @functools.cached_property
    def flow(self) -> Flow:
        from tideflow.runtime.loader import load_flow

        return load_flow(self.config.entry_point, self.config.project_dir)

    @property
    def title(self) -> str:
        return f"[bold]{self.config.project}[/] (stack [cyan]{self.stack.name}[/])"

    def consumers(self) -> list[Consumer]:
        if not self.flow.consumers:
            raise ConfigError("the flow has no consumers, so it has no event streams")
        return self.flow.consumers

    def admin_socket(self) -> Path | None:
        """The running app's admin socket, when it holds a warehouse file for us."""
        info = running_info(self.home)
        return Path(info["admin_socket"]) if info and info.get("admin_socket") else None


@app.callback()
def main(
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="No progress bars or spinners (never shown when not a terminal)."
        ),
    ] = False,
) -> None:
    set_quiet(quiet)
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Their per-request and per-change lines drown out tideflow's own.
    for chatty in ("httpx", "watchfiles", "botocore", "boto3"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not typer.confirm(question, default=False):
        console.print("Nothing done.")
        raise typer.Exit(0)


def _with_progress(label: str, action: Callable[..., list[PlanStep]], flow: Flow) -> list[PlanStep]:
    with progress(console) as bar:
        task = bar.add_task(label, total=len(flow.primitives()))
        return action(flow, on_step=lambda _: bar.advance(task))


@app.command()
@reports_errors
def plan(stack: StackOption = None) -> None:
    """Show the primitives and what apply would do to each."""
    from tideflow import infra

    ctx = Context(stack)
    console.print(plan_tree(ctx.title, infra.plan(ctx.flow)))


@app.command()
@reports_errors
def apply(stack: StackOption = None, yes: YesOption = False) -> None:
    """Create the missing primitives (asks first)."""
    from tideflow import infra

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
    from tideflow import infra

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
    """Events pending, in flight and done (as the queue tells), and failed, per consumer.

    While `tideflow run` runs, it answers (the flow is not even imported here)."""
    ctx = Context(stack)
    sock = ctx.admin_socket()
    if sock is not None:
        rows = [tuple(row) for row in ask_running(sock, "/status", {})["consumers"]]
    else:
        from tideflow.runtime.status import status_row

        rows = [status_row(c, c.source.source()) for c in ctx.consumers()]
    shown = [tuple("?" if v is None else v for v in row) for row in rows]
    columns = ["consumer", "pending", "in flight", "done", "failed"]
    console.print(line_table(columns, shown, wide=False, width=console.width))
    state = "running" if running_info(ctx.home) is not None else "not running"
    console.print(f"tideflow run: {state}")


@dead_letters_app.command("list")
@reports_errors
def dead_letters_list(
    stack: StackOption = None,
    limit: Annotated[int, typer.Option(help="Show at most this many.")] = 100,
    fmt: FormatOption = "table",
    wide: WideOption = False,
) -> None:
    """Events that failed too often, newest first, with their last error."""
    _check_format(fmt)
    ctx = Context(stack)
    rows = []
    for consumer in ctx.consumers():
        for letter in consumer.source.dead_letter_queue().list(limit=limit):
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
    if fmt != "table" or wide:
        _emit(columns, rows, fmt=fmt, wide=wide, noun="dead letter")
        return
    # One line each: the consumer only when there are several, the error gets the room.
    several = len({row[1] for row in rows}) > 1
    keep = [0, 1, 2, 4, 5] if several else [0, 2, 4, 5]
    headers = [columns[i] for i in keep]
    cells = [[render_cell(row[i]) for i in keep] for row in rows]
    floors = [4, 8, 12, 8, 20] if several else [4, 12, 8, 20]
    caps = [12, 16, 40, 8, 200] if several else [12, 40, 8, 200]
    summary = cut_table(headers, cells, floors, caps, console.width)
    _emit(columns, rows, fmt=fmt, wide=False, summary=summary, noun="dead letter")


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
    wanted = None if all_ else ids
    sock = ctx.admin_socket()
    count = 0
    for consumer in ctx.consumers():
        if sock is not None:
            count += ask_running(sock, "/dead-letters/retry", {"ids": wanted})["retried"]
        else:
            from tideflow.io.failures import retry_dead_letters

            count += retry_dead_letters(
                consumer.source.dead_letter_queue(), consumer.sink.failure_log(), wanted
            )
    console.print(f"{count} event(s) sent back for delivery.")


FormatOption = Annotated[
    str,
    typer.Option(
        "--format",
        help="table (fits the terminal), json, jsonl or csv (every column; nested as JSON).",
    ),
]
WideOption = Annotated[
    bool, typer.Option("--wide", help="With the table format: every column, nothing cut.")
]


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return fmt


def _emit(
    columns: list[str],
    rows: list[Any],
    *,
    fmt: str,
    wide: bool,
    summary: Any = None,
    noun: str = "row",
) -> None:
    """Rows as a table fitting the terminal (``summary`` when given), or as data."""
    if fmt != "table":
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


@app.command()
@reports_errors
def replay(
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="Only objects whose key starts with this.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only objects stored at or after this date/time (ISO 8601, UTC if no zone).",
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every object in the bucket.")] = False,
    stack: StackOption = None,
) -> None:
    """Send the change events of objects already in the bucket again, through the same stream,
    so the consumers process them anew (e.g. a new model classifies old images). Rows are
    idempotent: a consumer that writes the same row again adds nothing."""
    if not (prefix or since or all_):
        raise ConfigError("say which objects to replay: --prefix P, --since DATE, or --all")
    after = _parse_since(since) if since else None
    ctx = Context(stack)
    streams = []
    for consumer in ctx.consumers():
        stream = consumer.source
        if stream not in streams:
            streams.append(stream)
    total = 0
    for stream in streams:
        bucket = stream.bucket_primitive()
        if bucket is None:
            raise ConfigError(f"{stream.primitive_id()} is not a bucket's change stream")
        with progress(errors) as display:
            task = display.add_task(f"listing {bucket.bucket_name}", total=None)
            chosen = [
                stored
                for stored in bucket.objects().list(prefix=prefix or "")
                if after is None or stored.updated >= after
            ]
            display.update(task, description=f"replaying {bucket.bucket_name}", total=len(chosen))
            emitted = 0
            for start in range(0, len(chosen), 100):
                batch = chosen[start : start + 100]
                emitted += stream.replay(batch)
                display.advance(task, len(batch))
        total += emitted
        console.print(
            f"{stream.primitive_id()}: {emitted} event(s) sent again for {len(chosen)} object(s)"
            + (
                f" ({len(chosen) - emitted} already pending or gone)"
                if emitted < len(chosen)
                else ""
            )
        )
    state = (
        "running: it picks them up now"
        if running_info(ctx.home)
        else "not running: `tideflow run` processes them"
    )
    console.print(f"{total} event(s) replayed; tideflow run is {state}.")


def _parse_since(text: str) -> datetime.datetime:
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--since {text!r} is not an ISO 8601 date or date/time "
            "(2026-11-22 or 2026-11-22T10:00)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


@app.command()
@reports_errors
def query(
    sql: Annotated[
        str | None, typer.Argument(help="SQL; {table} names the consumer's table.")
    ] = None,
    results: Annotated[bool, typer.Option("--results", help="Show the latest rows.")] = False,
    label: Annotated[
        str | None,
        typer.Option(help="With --results: rows having an item with this label (any case)."),
    ] = None,
    q: Annotated[
        str | None,
        typer.Option("--q", help="With --results: rows having a label containing this text."),
    ] = None,
    limit: Annotated[int, typer.Option(help="With --results: how many rows.")] = 20,
    offset: Annotated[int, typer.Option(help="With --results: skip this many rows.")] = 0,
    write: Annotated[
        bool,
        typer.Option("--write", help="Let the SQL change rows (INSERT, UPDATE, DELETE)."),
    ] = False,
    max_rows: Annotated[
        int,
        typer.Option(
            "--max-rows", help=f"With SQL: show at most this many rows (up to {MAX_QUERY_ROWS:,})."
        ),
    ] = DEFAULT_QUERY_ROWS,
    fmt: FormatOption = "table",
    wide: WideOption = False,
    stack: StackOption = None,
) -> None:
    """Query the warehouse table (through the running app when it holds the file).

    SQL runs read-only, one statement (SELECT, WITH...), with no access to files; --write
    lets it change rows, never tables. --results prints one line per row (name, top
    label, status, model, time) that fits the terminal; --wide prints every column;
    --format json|jsonl|csv prints data.
    """
    if (sql is None) == (not results):
        raise ConfigError("give either a SQL query or --results")
    if label and q:
        raise ConfigError("give --label (exact) or --q (part of a label), not both")
    _check_format(fmt)
    ctx = Context(stack)
    if not ctx.flow.consumers:
        raise ConfigError("the flow has no consumer, so it has no table to query")
    table = ctx.flow.consumers[0].sink
    order_by, item = None, None
    if results:
        order_by, item = _results_shape(table, label or q, contains=q is not None)
    sock = ctx.admin_socket()
    with progress(errors, bar=False) as spinner:
        spinner.add_task("Querying", total=None, unit="rows")
        if sock is not None:
            payload = (
                {"sql": sql, "write": write, "max_rows": max_rows}
                if sql
                else {"order_by": order_by, "limit": limit, "offset": offset, "item": item}
            )
            path = "/query" if sql else "/select"
            answer = ask_running(sock, path, payload)
            columns, rows = answer["columns"], answer["rows"]
            truncated = bool(answer.get("truncated"))
        else:
            from tideflow.io.strategies import ItemFilter

            reader = table.reader()
            if sql:
                found = reader.user_query(sql, allow_writes=write, max_rows=max_rows)
            else:
                found = reader.select(
                    item=ItemFilter(**item) if item else None,
                    order_by=order_by,
                    limit=limit,
                    offset=offset,
                )
            columns, rows, truncated = found.columns, found.rows, found.truncated
    summary = None
    fields = getattr(table, "fields", None)
    if results and fmt == "table" and not wide and fields is not None:
        summary = summary_table(fields(), columns, rows, width=console.width)
    _emit(columns, rows, fmt=fmt, wide=wide, summary=summary)
    if truncated:
        errors.print(
            f"only the first {max_rows:,} row(s): the query has more (--max-rows, up to "
            f"{MAX_QUERY_ROWS:,}; `tideflow export` writes a whole table)",
            style="yellow",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
@reports_errors
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write (replaced if present).")],
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet or jsonl.")] = "csv",
    label: Annotated[
        str | None, typer.Option(help="Only rows having an item with this label (any case).")
    ] = None,
    q: Annotated[
        str | None, typer.Option("--q", help="Only rows having a label containing this text.")
    ] = None,
    stack: StackOption = None,
) -> None:
    """Write the table (newest first) to a CSV, Parquet or JSON-lines file.

    DuckDB writes the file itself (COPY); other warehouses are read page by page.
    """
    from tideflow.io.export import check_format

    check_format(fmt)
    if label and q:
        raise ConfigError("give --label (exact) or --q (part of a label), not both")
    ctx = Context(stack)
    if not ctx.flow.consumers:
        raise ConfigError("the flow has no consumer, so it has no table to export")
    table = ctx.flow.consumers[0].sink
    order_by, item = _results_shape(table, label or q, contains=q is not None)
    target = out.resolve()
    sock = ctx.admin_socket()
    with progress(console, bar=False) as spinner:
        task = spinner.add_task(f"Exporting to {out}", total=None, unit="rows")
        if sock is not None:
            payload = {"path": str(target), "format": fmt, "order_by": order_by, "item": item}
            answer = ask_running(sock, "/export", payload)
            count = int(answer["rows"])
        else:
            from tideflow.io.strategies import ItemFilter

            count = table.reader().export(
                target,
                fmt,
                item=ItemFilter(**item) if item else None,
                order_by=order_by,
                progress=lambda done: spinner.update(task, completed=done),
            )
    console.print(f"{count:,} row(s) written to {out}", highlight=False)


def _results_shape(
    table: Any, label: str | None, *, contains: bool = False
) -> tuple[str | None, dict[str, Any] | None]:
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
                "contains": contains,
            }
    raise ConfigError("--label needs a table with a list of records that have a 'label' field")
