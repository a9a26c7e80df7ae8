"""``tideflow replay``: objects already in the bucket, through the consumers again."""

from __future__ import annotations

import datetime
from typing import Annotated

import typer

from tideflow.cli.common import StackOption, console, errors, open_here
from tideflow.cli.progress import progress
from tideflow.exceptions import ConfigError

BATCH = 100


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
    project = open_here(stack)
    streams = []
    for consumer in project.consumers():
        if consumer.source not in streams:
            streams.append(consumer.source)
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
            for start in range(0, len(chosen), BATCH):
                batch = chosen[start : start + BATCH]
                emitted += stream.replay(batch)
                display.advance(task, len(batch))
        total += emitted
        skipped = len(chosen) - emitted
        console.print(
            f"{stream.primitive_id()}: {emitted} event(s) sent again for {len(chosen)} object(s)"
            + (f" ({skipped} already pending or gone)" if skipped else "")
        )
    state = (
        "running: it picks them up now"
        if project.is_running
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
