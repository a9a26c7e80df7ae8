"""Integration: a flow of two consumers through ``tideflow run`` and the command line.

Every consumer's table and dead letters are read through the running app (which holds
the DuckDB file), the second's as well as the first's, and the same from a script
(``tideflow.open_project``) while it runs and after it stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import TideflowProcess

TWOFLOW = Path(__file__).parent / "twoflow"

# What a script sees of the project: the same whether the app runs or not.
_SCRIPT = """
import datetime, json, tideflow

project = tideflow.open_project()
letters = project.table("count_letters").select(order_by="processed_at", limit=10)
records = letters.records()
print(json.dumps({
    "running": project.is_running,
    "letters": sorted((r["key"], r["count"]) for r in records),
    "typed": all(isinstance(r["processed_at"], datetime.datetime) for r in records),
    "words": project.table("count_words").count(),
    "dead": [project.dead_letters(name).count() for name in ("count_words", "count_letters")],
    "status": [row[0] for row in project.status()],
}))
"""


def _drop(app: TideflowProcess, bucket: str, name: str, text: str) -> None:
    """Put a file into a bucket's folder at once, as another program would."""
    folder = app.home / bucket
    folder.mkdir(parents=True, exist_ok=True)
    staged = app.home / f".{name}.staged"
    staged.write_text(text)
    os.replace(staged, folder / name)


def _until(check: Callable[[], subprocess.CompletedProcess[str]], text: str, app: TideflowProcess):
    deadline = time.monotonic() + 60
    while text not in (done := check()).stdout:
        assert time.monotonic() < deadline, done.stdout + done.stderr + app.log()
        time.sleep(0.3)
    return done


def _script(app: TideflowProcess) -> dict[str, object]:
    done = app.python("-c", _SCRIPT)
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def test_each_consumers_table_and_dead_letters_through_the_running_app(
    tideflow_factory: Callable[..., TideflowProcess],
) -> None:
    app = tideflow_factory(TWOFLOW)
    app.start("--replicas", "1")
    _drop(app, "files", "words.txt", "three short words")
    _drop(app, "notes", "poison.txt", "POISON pill")
    _drop(app, "notes", "note.txt", "abc")

    listing = _until(lambda: app.cli("dead-letters", "list", "--format", "json"), "poison", app)
    (letter,) = json.loads(listing.stdout)
    assert (letter["consumer"], letter["key"], letter["attempts"]) == (
        "count_letters",
        "poison.txt",
        2,
    )
    assert letter["error"] == "ValueError: cannot count poison.txt"

    # The second consumer's dead letter goes back to its own stream.
    (app.home / "fault-fixed").touch()
    retried = app.cli("dead-letters", "retry", "--all")
    assert retried.returncode == 0, retried.stderr
    assert "1 event(s) sent back" in retried.stdout
    sql = "SELECT key, count FROM {table} ORDER BY key"
    letters = _until(
        lambda: app.cli("query", sql, "--consumer", "count_letters", "--format", "csv"),
        "poison.txt",
        app,
    )
    assert letters.stdout.splitlines() == ["key,count", "note.txt,3", "poison.txt,10"]
    assert "poison.txt" not in app.cli("dead-letters", "list").stdout

    words = app.cli("query", sql, "--consumer", "count_words", "--format", "csv")
    assert words.stdout.splitlines() == ["key,count", "words.txt,3"], words.stderr
    unnamed = app.cli("query", sql)
    assert unnamed.returncode == 2
    assert (
        "the flow has 2 consumers (count_words, count_letters): say which one (--consumer NAME"
        in " ".join(unnamed.stderr.split())
    )
    unknown = app.cli("export", "--consumer", "count_lines", "--out", str(app.home / "x.csv"))
    assert unknown.returncode == 2
    assert "no consumer named 'count_lines'; its consumers: count_words, count_letters" in (
        " ".join(unknown.stderr.split())
    )

    status = app.cli("status")
    rows = {line.split()[0]: line.split()[1:] for line in status.stdout.splitlines()[2:4]}
    assert rows == {"count_words": ["0", "0", "1", "0"], "count_letters": ["0", "0", "2", "0"]}

    running = _script(app)
    assert app.stop() == 0
    stopped = _script(app)
    assert (running.pop("running"), stopped.pop("running")) == (True, False)
    assert (
        running
        == stopped
        == {
            "letters": [["note.txt", 3], ["poison.txt", 10]],
            "typed": True,
            "words": 1,
            "dead": [0, 0],
            "status": ["count_words", "count_letters"],
        }
    )

    # A row type without a summary: the columns that fit; without a label field: --item.
    latest = app.cli("query", "--results", "--consumer", "count_words")
    assert latest.stdout.split()[:3] == ["key", "count", "processed_at"], latest.stdout
    label = app.cli("query", "--results", "--consumer", "count_words", "--label", "x")
    assert label.returncode == 2
    assert "row type names in tideflow_label, and it names none: use --item" in (
        " ".join(label.stderr.split())
    )

    out = app.home / "letters.csv"
    exported = app.cli("export", "--consumer", "count_letters", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert out.read_text().splitlines()[0] == "key,count,processed_at"
