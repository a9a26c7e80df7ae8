"""Exporting a table (or the rows matching an item filter) to CSV, Parquet or JSON lines.

``TableReader.export`` writes the pages of ``TableReader.pages`` to the file here (by
default ``select_pages``: ``select`` page by page, any warehouse; BigQuery reads one query
job's result in pages); the DuckDB reader overrides ``export`` with DuckDB's own
``COPY ... TO``. In CSV, nested values
(lists, records) are JSON text; JSON lines and Parquet keep them nested. Parquet is
written by an in-memory DuckDB from a JSON-lines spool file, so no other library is needed.

An export replaces a regular file (a symlink's file) or creates one, atomically: it
writes beside the target and renames. A folder, a FIFO or a device at the target is
refused (a rename would put a file in its place: ``--out /dev/null`` as root would
replace the machine's /dev/null), and the OS refusing the file is one line, not a trace.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import errno
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tideflow.exceptions import ConfigError

if TYPE_CHECKING:
    from tideflow.io.strategies import ItemFilter, TableReader

EXPORT_FORMATS = ("csv", "parquet", "jsonl")
PAGE_ROWS = 5000

Progress = Callable[[int], None]


def check_format(fmt: str) -> str:
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    return fmt


_NOT_FILES = {
    stat.S_IFDIR: "a folder (name a file in it)",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
    stat.S_IFSOCK: "a socket",
}


@contextlib.contextmanager
def export_file(path: Path) -> Iterator[Path]:
    """The absolute target for an export to ``path``, refused (``ConfigError``) when
    something other than a regular file is there; an ``OSError`` while writing it is a
    ``ConfigError`` too, with the OS's reason."""
    target = Path(path).resolve()
    try:
        try:
            kind = stat.S_IFMT(target.stat().st_mode)
        except FileNotFoundError:
            kind = stat.S_IFREG
        if kind in _NOT_FILES:
            raise ConfigError(
                f"cannot export to {path}: it is {_NOT_FILES[kind]}; an export writes a "
                "regular file"
            )
        yield target
    except OSError as exc:
        raise ConfigError(f"cannot export to {path}: {exc.strerror or exc}") from exc


def place_export(written: Path, target: Path) -> None:
    """Move the finished file ``written`` to ``target`` in one rename (through a copy
    beside ``target`` when they are on different filesystems)."""
    try:
        os.replace(written, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        partial = _partial(target)
        try:
            shutil.copyfile(written, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)


def _partial(target: Path) -> Path:
    return target.with_name(f".{target.name}.partial")


def sql_string(text: str) -> str:
    """A SQL string literal (COPY's file name cannot be a parameter)."""
    return "'" + text.replace("'", "''") + "'"


def json_value(value: Any) -> Any:
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    return value


def csv_value(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return json.dumps(json_value(value), ensure_ascii=False)
    return json_value(value)


def select_pages(
    reader: TableReader,
    *,
    item: ItemFilter | None,
    order_by: str | None,
    page_rows: int = PAGE_ROWS,
) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
    """``(columns, rows)`` pages of the matching rows, newest ``order_by`` first."""
    offset = 0
    while True:
        found = reader.select(item=item, order_by=order_by, limit=page_rows, offset=offset)
        if found.rows:
            yield found.columns, found.rows
        if len(found.rows) < page_rows:
            return
        offset += len(found.rows)


def export_pages(
    reader: TableReader,
    path: Path,
    fmt: str,
    *,
    item: ItemFilter | None = None,
    order_by: str | None = None,
    progress: Progress | None = None,
) -> int:
    """Write the matching rows to ``path`` page by page; how many rows were written."""
    check_format(fmt)
    with export_file(path) as target:
        partial = _partial(target)
        try:
            written = _write_pages(reader, partial, fmt, item, order_by, progress)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return written


def _write_pages(
    reader: TableReader,
    path: Path,
    fmt: str,
    item: ItemFilter | None,
    order_by: str | None,
    progress: Progress | None,
) -> int:
    if fmt == "parquet":
        return _parquet_from_pages(reader, path, item, order_by, progress)
    written = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
        for index, (columns, rows) in enumerate(reader.pages(item=item, order_by=order_by)):
            if writer is not None:
                if index == 0:
                    writer.writerow(columns)
                writer.writerows([csv_value(v) for v in row] for row in rows)
            else:
                for row in rows:
                    record = dict(zip(columns, map(json_value, row), strict=True))
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
            written += len(rows)
            if progress is not None:
                progress(written)
    return written


def _parquet_from_pages(
    reader: TableReader,
    path: Path,
    item: ItemFilter | None,
    order_by: str | None,
    progress: Progress | None,
) -> int:
    import duckdb

    with tempfile.TemporaryDirectory(prefix="tideflow-export-") as spool_dir:
        spool = Path(spool_dir) / "rows.jsonl"
        written = _write_pages(reader, spool, "jsonl", item, order_by, progress)
        with duckdb.connect() as connection:
            if written:
                source = "read_json_auto($spool, format = 'newline_delimited')"
            else:
                source = "(SELECT NULL AS empty WHERE FALSE)"
            connection.execute(
                f"COPY (SELECT * FROM {source}) TO {sql_string(str(path))} (FORMAT parquet)",
                {"spool": str(spool)} if written else {},
            )
    return written
