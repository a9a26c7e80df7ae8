"""Integration: a poison file is dead-lettered with its error and can be retried."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.conftest import TideflowProcess
from tests.tideflow.conftest import upload, wait_for_rows


def test_poison_file_is_dead_lettered_then_retried(
    textflow: Callable[..., TideflowProcess],
) -> None:
    app = textflow()
    app.start("--replicas", "1")
    assert upload(app, "poison.txt", "POISON pill").status_code == 202
    for i in range(4):
        assert upload(app, f"good-{i}.txt", "fine words").status_code == 202
    wait_for_rows(app, 4)

    deadline = time.monotonic() + 30
    while "poison.txt" not in (listing := app.cli("dead-letters", "list")).stdout:
        assert time.monotonic() < deadline, listing.stdout + app.log()
        time.sleep(0.3)
    assert "cannot digest poison.txt" in listing.stdout
    # One line per dead letter: id, key, attempts (max_attempts of the test flow), error.
    line = next(row for row in listing.stdout.splitlines() if "poison.txt" in row)
    assert line.split()[1:3] == ["poison.txt", "3"], listing.stdout

    (app.home / "fault-fixed").touch()
    retried = app.cli("dead-letters", "retry", "--all")
    assert retried.returncode == 0, retried.stderr
    assert "1 event(s) sent back" in retried.stdout
    found = wait_for_rows(app, 5)
    assert found["poison.txt"] == 1
    assert "poison.txt" not in app.cli("dead-letters", "list").stdout


def test_retry_needs_ids_or_all(textflow: Callable[..., TideflowProcess]) -> None:
    result = textflow().cli("dead-letters", "retry")
    assert result.returncode == 2
    assert "name dead-letter ids to retry, or pass --all" in result.stderr


def test_replica_that_dies_is_restarted_and_its_event_dead_lettered(
    textflow: Callable[..., TideflowProcess],
) -> None:
    app = textflow()
    app.start("--replicas", "1")
    assert upload(app, "crash.txt", "CRASH now").status_code == 202
    for i in range(3):
        assert upload(app, f"after-{i}.txt", "still working").status_code == 202
    found = wait_for_rows(app, 3, timeout=90)
    assert found == {f"after-{i}.txt": 1 for i in range(3)}
    deadline = time.monotonic() + 60
    while "crash.txt" not in (listing := app.cli("dead-letters", "list")).stdout:
        assert time.monotonic() < deadline, listing.stdout + app.log()
        time.sleep(0.3)
    assert "died (exit code 3)" in listing.stdout
    assert app.log().count("replica count_words[0] ready") == 4  # first start + 3 restarts
