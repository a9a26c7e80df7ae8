"""Exporting a table (or the rows matching an item filter) to CSV, Parquet or JSON lines.

``TableReader.export`` writes the pages of ``TableReader.pages`` to the file here (by
default ``select_pages``: ``select`` page by page, any warehouse; BigQuery reads one query
job's result in pages); the DuckDB reader overrides ``export`` with DuckDB's own
``COPY ... TO``. In CSV, nested values
(lists, records) are JSON text; JSON lines and Parquet keep them nested. Parquet is
written by an in-memory DuckDB from a JSON-lines spool file, so no other library is needed.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

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
    path = Path(path)
    written = 0
    partial = path.with_name(f".{path.name}.partial")
    try:
        if fmt == "parquet":
            written = _parquet_from_pages(reader, partial, item, order_by, progress)
        else:
            with partial.open("w", encoding="utf-8", newline="") as out:
                writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
                for index, (columns, rows) in enumerate(reader.pages(item=item, order_by=order_by)):
                    if writer is not None:
                        if index == 0:
                            writer.writerow(columns)
                        writer.writerows([csv_value(v) for v in row] for row in rows)
                    else:
                        _write_json_lines(out, columns, rows)
                    written += len(rows)
                    if progress is not None:
                        progress(written)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return written


def _write_json_lines(out: IO[str], columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    for row in rows:
        record = dict(zip(columns, map(json_value, row), strict=True))
        out.write(json.dumps(record, ensure_ascii=False) + "\n")


def _parquet_from_pages(
    reader: TableReader,
    path: Path,
    item: ItemFilter | None,
    order_by: str | None,
    progress: Progress | None,
) -> int:
    import duckdb

    written = 0
    with tempfile.TemporaryDirectory(prefix="tideflow-export-") as spool_dir:
        spool = Path(spool_dir) / "rows.jsonl"
        with spool.open("w", encoding="utf-8") as out:
            for columns, rows in reader.pages(item=item, order_by=order_by):
                _write_json_lines(out, columns, rows)
                written += len(rows)
                if progress is not None:
                    progress(written)
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
