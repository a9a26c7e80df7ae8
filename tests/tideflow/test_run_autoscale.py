"""Integration: ``tideflow run`` scales a consumer's replicas with its backlog and back.

The text flow's consumer takes 0.15 s per event (a replica burns ~6 events/s) and scales
1..3 replicas, checking every second with a 2 s backlog-burn threshold.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.conftest import TideflowProcess
from tests.tideflow.conftest import wait_for_rows

pytestmark = pytest.mark.slow

FILES = 60


def gauges(app: TideflowProcess) -> dict[str, float]:
    """The count_words samples of the autoscaling gauges in /metrics."""
    text = httpx.get(f"{app.base_url}/metrics", timeout=10).text
    found = re.findall(r'^(tideflow_consumer_\w+)\{consumer="count_words"\} (\S+)$', text, re.M)
    return {name: float(value) for name, value in found}


def replicas(app: TideflowProcess) -> dict[str, str]:
    return dict(httpx.get(f"{app.base_url}/healthz", timeout=10).json()["replicas"])


def test_replicas_follow_the_backlog_up_and_back_down(
    textflow: Callable[..., TideflowProcess], tmp_path: Path
) -> None:
    app = textflow(
        TEXTFLOW_DELAY="0.15",
        TEXTFLOW_MAX_REPLICAS="3",
        TEXTFLOW_AUTOSCALE_FREQUENCY_SECS="1",
        TEXTFLOW_CONSUMER_BACKLOG_BURN_THRESHOLD="2",
    )
    app.start()
    assert "autoscaling 1..3 every 1s" in app.log()
    # Idle: one replica (the minimum), and it stays so.
    time.sleep(2.5)
    assert replicas(app) == {"count_words[0]": "ready"}
    assert gauges(app) == {
        "tideflow_consumer_replicas": 1,
        "tideflow_consumer_backlog": 0,
        "tideflow_consumer_oldest_pending_seconds": 0,
    }

    # Another program drops a burst of files straight into the bucket folder.
    outside = tmp_path / "burst"
    outside.mkdir()
    for i in range(FILES):
        (outside / f"burst-{i:03}.txt").write_text(f"file number {i}")
    subprocess.run(["cp", *map(str, outside.iterdir()), str(app.home / "files")], check=True)

    seen_replicas: set[str] = set()
    most_ready = 0
    waiting: list[float] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        seen_replicas |= set(replicas(app))
        now = gauges(app)
        most_ready = max(most_ready, int(now["tideflow_consumer_replicas"]))
        if now["tideflow_consumer_backlog"]:
            waiting.append(now["tideflow_consumer_oldest_pending_seconds"])
        done = sum(httpx.get(f"{app.base_url}/rows", timeout=10).json().values())
        # Added replicas count once ready, even if the burst is gone by then, and stay a
        # full window before they may go: all three are seen ready at once.
        if done == FILES and most_ready == 3:
            break
        time.sleep(0.2)
    wait_for_rows(app, FILES)
    assert seen_replicas == {f"count_words[{i}]" for i in range(3)}, app.log()[-3000:]
    assert most_ready == 3, app.log()[-3000:]
    assert waiting and max(waiting) > 0  # events waited, and the gauge said for how long

    # Idle again: back to the minimum, each removed replica having finished its batch.
    deadline = time.monotonic() + 30
    while replicas(app) != {"count_words[0]": "ready"}:
        assert time.monotonic() < deadline, app.log()[-3000:]
        time.sleep(0.2)
    assert gauges(app)["tideflow_consumer_replicas"] == 1
    assert app.stop() == 0

    log = app.log()
    up = re.search(r"count_words: 1 -> (\d) replicas \(\+count_words\[1\].*backlog of \d+", log)
    assert up, log[-3000:]
    assert re.search(r"count_words: \d -> 1 replicas .*CPU \d+% is under the 25% target", log)
    # Every file once, and more than one replica did the work.
    with duckdb.connect(str(app.home / "warehouse.duckdb"), read_only=True) as db:
        per_key = db.execute("SELECT key, count(*) FROM texts GROUP BY key").fetchall()
        pids = db.execute("SELECT count(DISTINCT replica_pid) FROM texts").fetchone()
    assert dict(per_key) == {f"burst-{i:03}.txt": 1 for i in range(FILES)}
    assert pids is not None and pids[0] >= 2
