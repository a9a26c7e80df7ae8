"""``tideflow query`` fits an 80-column terminal; ``--format``; ``tideflow export`` round trips.

The app's table is filled with 1,000 made-up rows (bench/results_table.py) while the app
is not running, so the commands read the DuckDB file themselves; the same commands
through the running app are in test_everyday.py.
"""

from __future__ import annotations

import csv
import json
import os
import pty
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from bench.results_table import fill
from tests.app.support import make_app
from tests.conftest import TideflowProcess

ROWS = 1000


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TideflowProcess]:
    app = make_app(tmp_path_factory.mktemp("everyday-cli") / "home", COLUMNS="80")
    applied = app.cli("apply", "--yes")
    assert applied.returncode == 0, applied.stderr
    with duckdb.connect(str(app.home / "image_classification.duckdb")) as connection:
        fill(connection, ROWS)
    yield app
    app.close()


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_results_are_one_line_per_image_in_80_columns(filled: TideflowProcess) -> None:
    result = filled.cli("query", "--results", "--limit", "5")
    assert result.returncode == 0, result.stderr
    lines = _lines(result.stdout)
    assert len(lines) == 2 + 5 + 1, result.stdout  # header, rule, 5 rows, count
    assert max(len(line) for line in lines) <= 80, result.stdout
    header = lines[0].split()
    assert header[:4] == ["image_name", "top", "label", "status"], lines[0]
    assert lines[2].startswith("photo-999.jpg"), result.stdout  # newest first
    assert "%" in lines[2] and "efficientnet" in lines[2]

    wide = filled.cli("query", "--results", "--limit", "2", "--wide")
    assert wide.returncode == 0, wide.stderr
    assert "image_id" in wide.stdout and "latency_ms" in wide.stdout
    assert '"confidence":' in wide.stdout  # nested values in full


def test_formats_carry_every_column(filled: TideflowProcess) -> None:
    as_json = json.loads(
        filled.cli("query", "--results", "--limit", "3", "--format", "json").stdout
    )
    assert len(as_json) == 3
    assert as_json[0]["image_name"] == "photo-999.jpg"
    assert len(as_json[0]["classifications"]) == 5
    assert {"image_id", "upload", "model_id", "latency_ms"} <= as_json[0].keys()

    jsonl = filled.cli("query", "--results", "--limit", "4", "--format", "jsonl").stdout
    assert [json.loads(line)["image_name"] for line in jsonl.splitlines()] == [
        f"photo-{n}.jpg" for n in (999, 998, 997, 996)
    ]

    sql = "SELECT image_name, classifications FROM {table} ORDER BY upload LIMIT 2"
    rows = list(csv.DictReader(filled.cli("query", sql, "--format", "csv").stdout.splitlines()))
    assert [r["image_name"] for r in rows] == ["photo-0.jpg", "photo-1.jpg"]
    assert json.loads(rows[0]["classifications"])[0]["label"]

    table = filled.cli("query", "SELECT * FROM {table} LIMIT 3")
    assert table.returncode == 0, table.stderr
    assert max(len(line) for line in _lines(table.stdout)) <= 80, table.stdout
    assert "more column(s): --wide" in table.stdout

    bad = filled.cli("query", "--results", "--format", "xml")
    message = " ".join(bad.stderr.replace("│", " ").split())  # out of Typer's error box
    assert bad.returncode == 2
    assert "'--format': 'xml' is not one of 'table', 'json', 'jsonl', 'csv'" in message


def test_label_search_matches_parts_of_labels(filled: TideflowProcess) -> None:
    found = json.loads(
        filled.cli("query", "--results", "--q", "CAT", "--limit", "1000", "--format", "json").stdout
    )
    assert found
    for row in found:
        assert any("cat" in c["label"].lower() for c in row["classifications"]), row


def test_item_filters_are_generic_and_label_is_the_apps_shortcut(
    filled: TideflowProcess,
) -> None:
    def names(*args: str) -> list[str]:
        done = filled.cli("query", "--results", "--limit", "1000", "--format", "json", *args)
        assert done.returncode == 0, done.stderr
        return [row["image_name"] for row in json.loads(done.stdout)]

    contains = names("--item", "classifications.label=CAT", "--contains")
    assert contains and contains == names("--q", "cat")
    exact = names("--item", "classifications.label=Tabby")
    assert exact and exact == names("--label", "tabby")
    assert set(exact) < set(names("--q", "TAB"))  # "dining table" holds "tab" too

    for args, message in [
        (["--item", "classifications.labl=cat"], "no item field 'classifications.labl' to "
         "filter on; the table has: classifications.label"),
        (["--item", "classifications.label"], "--item takes COLUMN.FIELD=VALUE"),
        (["--label", "cat", "--q", "cat"], "give one item filter, not --label and --q"),
        (["--contains"], "--contains goes with --item COLUMN.FIELD=VALUE"),
    ]:  # fmt: skip
        refused = filled.cli("query", "--results", *args)
        assert refused.returncode == 2, refused.stdout
        assert message in " ".join(refused.stderr.split())


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_writes_every_row_and_reads_back(
    filled: TideflowProcess, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"results.{fmt}"
    result = filled.cli("export", "--format", fmt, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"{ROWS:,} row(s) written" in result.stdout
    assert "Exporting" not in result.stdout  # no progress when not a terminal
    reader = {
        "csv": "read_csv($p, header = true)",
        "jsonl": "read_json_auto($p, format = 'newline_delimited')",
        "parquet": "read_parquet($p)",
    }[fmt]
    count, names = duckdb.execute(
        f"SELECT COUNT(*), COUNT(DISTINCT image_name) FROM {reader}", {"p": str(out)}
    ).fetchone() or (0, 0)
    assert (count, names) == (ROWS, ROWS)
    first = duckdb.execute(f"SELECT * FROM {reader} LIMIT 1", {"p": str(out)}).fetchone()
    assert first is not None and first[1] == "photo-999.jpg"
    if fmt == "csv":
        with out.open() as handle:
            row = next(csv.DictReader(handle))
        assert len(json.loads(row["classifications"])) == 5


def test_export_with_a_label_filter(filled: TideflowProcess, tmp_path: Path) -> None:
    out = tmp_path / "cats.jsonl"
    result = filled.cli("export", "--format", "jsonl", "--q", "cat", "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert 0 < len(rows) < ROWS
    assert all(any("cat" in c["label"].lower() for c in r["classifications"]) for r in rows)


def test_dead_letters_and_status_fit_80_columns(filled: TideflowProcess) -> None:
    journal = filled.home / "journal" / "image-bucket.sqlite3"
    with sqlite3.connect(journal) as db:
        (stream,) = db.execute("SELECT stream_id FROM streams").fetchone()
        db.execute(
            "INSERT INTO events (stream_id, key, generation, size, event_time, state, attempts, "
            "last_error, updated) VALUES (?, ?, 1, 10, ?, 'dead', 3, ?, ?)",
            (
                stream,
                "uploads/2026/a-rather-long-name-for-a-photo-that-failed.jpg",
                time.time(),
                "InvalidImageError: cannot identify image file (the bytes are not an image) " * 2,
                time.time(),
            ),
        )
    letters = filled.cli("dead-letters", "list")
    assert letters.returncode == 0, letters.stderr
    lines = _lines(letters.stdout)
    assert len(lines) == 2 + 1 + 1, letters.stdout
    assert max(len(line) for line in lines) <= 80, letters.stdout
    assert "InvalidImageError" in lines[2]
    as_json = json.loads(filled.cli("dead-letters", "list", "--format", "json").stdout)
    assert as_json[0]["error"].startswith("InvalidImageError") and as_json[0]["attempts"] == 3

    status = filled.cli("status")
    assert status.returncode == 0, status.stderr
    assert max(len(line) for line in _lines(status.stdout)) <= 80, status.stdout


def _on_a_terminal(app: TideflowProcess, *args: str) -> str:
    """Run ``tideflow ARGS`` with stdout and stderr on a pseudo-terminal; what it wrote."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "tideflow", *args],
        cwd=app.project_dir,
        env={**app.env, "TERM": "xterm-256color"},
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the follower side closed: the process ended
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(60) == 0, output.decode(errors="replace")
    return output.decode(errors="replace")


def test_export_shows_progress_on_a_terminal_unless_quiet(
    filled: TideflowProcess, tmp_path: Path
) -> None:
    out = tmp_path / "shown.csv"
    shown = _on_a_terminal(filled, "export", "--format", "csv", "--out", str(out))
    assert "Exporting to" in shown
    assert "1,000 row(s) written" in shown
    quiet = _on_a_terminal(filled, "--quiet", "export", "--format", "csv", "--out", str(out))
    assert "Exporting to" not in quiet
    assert "1,000 row(s) written" in quiet


def test_query_reads_only_the_table_and_caps_rows(filled: TideflowProcess) -> None:
    # Through the running app: test_query_limits.py; every refusal: test_user_query.py.
    files = filled.cli("query", "SELECT * FROM read_csv('/etc/passwd', header = false)")
    assert files.returncode == 2 and "disabled by configuration" in files.stderr
    drop = filled.cli("query", "DROP TABLE {table}", "--write")
    assert drop.returncode == 2 and "DROP statements are not run" in drop.stderr
    capped = filled.cli("query", "SELECT image_name FROM {table}", "--max-rows", "5")
    assert capped.returncode == 0, capped.stderr
    assert "5 row(s)" in capped.stdout
    assert "only the first 5 row(s): the query has more" in capped.stderr


def test_export_refuses_a_fifo_or_a_folder(filled: TideflowProcess, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target, kind in ((fifo, "a FIFO"), (tmp_path, "a folder")):
        refused = filled.cli("export", "--out", str(target))
        assert refused.returncode == 2, refused.stdout
        assert f"cannot export to {target}: it is {kind}" in refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]


def test_replay_names_each_stream(filled: TideflowProcess) -> None:
    replayed = filled.cli("replay", "--all")
    assert replayed.returncode == 0, replayed.stderr
    assert "local-file-change-stream:" in replayed.stdout
    assert "bound method" not in replayed.stdout
