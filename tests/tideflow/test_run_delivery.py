"""Integration: a real ``tideflow run`` of the text flow delivers each file once."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.conftest import TideflowProcess
from tests.tideflow.conftest import rows_by_key, upload, wait_for_rows

Make = Callable[..., TideflowProcess]


def test_bucket_writes_and_copied_files_are_each_processed_once(
    textflow: Make, tmp_path: Path
) -> None:
    app = textflow()
    app.start("--replicas", "2")
    for i in range(5):
        assert upload(app, f"api-{i}.txt", f"uploaded file {i}").status_code == 202
    outside = tmp_path / "outside"
    outside.mkdir()
    for i in range(5):
        (outside / f"copied-{i}.txt").write_text(f"copied by another program {i}")
    # Another process drops files straight into the bucket folder.
    subprocess.run(["cp", *map(str, outside.iterdir()), str(app.home / "files")], check=True)

    found = wait_for_rows(app, 10)
    # While it runs, the running app answers `tideflow status`: the command imports
    # neither the flow nor FastAPI (that is what keeps it quick).
    running = _status_lines(app, "import sys; assert 'fastapi' not in sys.modules")
    assert running[0].split()[1:] == ["0", "0", "10", "0"], running
    assert running[1] == "tideflow run: running"
    assert app.stop() == 0
    expected = {f"api-{i}.txt" for i in range(5)} | {f"copied-{i}.txt" for i in range(5)}
    assert found == dict.fromkeys(expected, 1)
    assert rows_by_key(app) == dict.fromkeys(expected, 1)
    # Stopped: the command reads the journal and the failures itself.
    stopped = _status_lines(app)
    assert stopped[0].split()[1:] == ["0", "0", "10", "0"], stopped  # ten events done
    assert stopped[1] == "tideflow run: not running"


def _status_lines(app: TideflowProcess, then: str = "") -> list[str]:
    """``tideflow status``'s count_words line and its last line; ``then`` runs after it."""
    script = f"from tideflow.cli.main import app; app(['status'], standalone_mode=False); {then}"
    done = app.python("-c", script)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    # consumer, pending, in flight, done, failed
    return [next(row for row in lines if row.startswith("count_words")), lines[-1]]


def test_files_added_while_stopped_are_processed_after_restart(textflow: Make) -> None:
    app = textflow()
    app.start("--replicas", "1")
    assert upload(app, "before.txt", "one two").status_code == 202
    wait_for_rows(app, 1)
    assert app.stop() == 0

    shutil.copy(__file__, app.home / "files" / "while-down.txt")
    (app.home / "files" / "nested").mkdir()
    (app.home / "files" / "nested" / "deep.txt").write_text("deep file")

    app.start("--replicas", "1")
    found = wait_for_rows(app, 3)
    assert found == {"before.txt": 1, "while-down.txt": 1, "nested/deep.txt": 1}


def test_kill9_during_processing_loses_nothing_and_duplicates_nothing(textflow: Make) -> None:
    app = textflow(TEXTFLOW_DELAY="0.2")
    app.start("--replicas", "2")
    accepted = []
    for i in range(50):
        response = upload(app, f"file-{i:02}.txt", f"crash test {i}")
        assert response.status_code == 202
        accepted.append(response.json()["key"])
    time.sleep(0.5)  # some rows are written, many events are still leased or pending
    app.kill9()
    partial = rows_by_key(app)
    assert 0 < len(partial) < 50, "kill -9 should land while work is in flight"

    app.env["TEXTFLOW_DELAY"] = "0"
    app.start("--replicas", "2")
    found = wait_for_rows(app, 50)
    assert app.stop() == 0
    assert found == dict.fromkeys(accepted, 1)
    assert rows_by_key(app) == dict.fromkeys(accepted, 1)


def test_sigterm_stops_gracefully_with_nothing_lost(textflow: Make) -> None:
    app = textflow(TEXTFLOW_DELAY="0.1")
    app.start("--replicas", "2")
    for i in range(20):
        assert upload(app, f"term-{i}.txt", "graceful stop").status_code == 202
    time.sleep(0.3)
    started = time.monotonic()
    assert app.stop(signal.SIGTERM, timeout=10) == 0
    assert time.monotonic() - started < 10

    app.env["TEXTFLOW_DELAY"] = "0"
    app.start("--replicas", "2")
    found = wait_for_rows(app, 20)
    assert found == {f"term-{i}.txt": 1 for i in range(20)}


def test_replica_dependency_is_built_once_per_replica(textflow: Make) -> None:
    app = textflow()
    app.start("--replicas", "2")
    for i in range(12):
        assert upload(app, f"r-{i}.txt", "count replicas").status_code == 202
    wait_for_rows(app, 12)
    assert app.stop() == 0
    builds = (app.home / "replica-builds.txt").read_text().split()
    assert len(builds) == 2
    assert len(set(builds)) == 2, "each replica is its own process"


def test_generator_dependencies_of_every_scope_are_cleaned_up(textflow: Make) -> None:
    """Per call after each call, REPLICA when the replica stops, PROCESS and GLOBAL when
    the run stops: each ``finally`` ran, in the process that did the setup."""
    app = textflow()
    app.start("--replicas", "1")
    for i in range(3):
        assert upload(app, f"life-{i}.txt", "clean up after me").status_code == 202
    wait_for_rows(app, 3)  # the /rows endpoint asks for them too
    assert app.stop() == 0
    lines = (app.home / "lifecycle.txt").read_text().splitlines()
    opened = Counter(line.removeprefix("open ") for line in lines if line.startswith("open"))
    closed = Counter(line.removeprefix("close ") for line in lines if line.startswith("close"))
    assert opened == closed, lines
    pids = {key.split()[1] for key in opened}
    assert len(pids) == 2, "the run process (service, GLOBAL) and one replica"
    scopes = Counter(key.split()[0] for key in opened.elements())
    assert scopes["GLOBAL"] == 1  # built by the run process, handed to the replica
    assert scopes["REPLICA"] == 2  # the replica and the service
    assert scopes["PROCESS"] == 2  # one per process
    # Once per call, though asked for twice (by count_words and by Lifecycles).
    assert scopes["NO_SCOPE"] >= 3 + 1
