"""The app's autoscaling settings through ``tideflow run``: one replica while idle, two under
a burst of photos dropped into the bucket folder, one again once they are classified, and
every photo classified once."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.app.support import PHOTOS, make_app

pytestmark = pytest.mark.slow

BURST = 150


def _replicas(base_url: str) -> dict[str, str]:
    return dict(httpx.get(f"{base_url}/healthz", timeout=10).json()["replicas"])


def test_replicas_scale_with_a_burst_of_photos(tmp_path: Path) -> None:
    app = make_app(
        tmp_path / "home",
        MAX_REPLICAS="2",
        AUTOSCALE_FREQUENCY_S="1",
        AUTOSCALE_BACKLOG_BURN_S="1",
    )
    try:
        app.start()
        assert "autoscaling 1..2 every 1s (backlog burn threshold 1s, CPU target 25%)" in app.log()
        assert _replicas(app.base_url) == {"classify_image[0]": "ready"}

        staging = tmp_path / "staging"
        staging.mkdir()
        names = []
        for n in range(BURST):
            photo = PHOTOS[n % len(PHOTOS)]
            names.append(f"burst-{n:03}{photo.suffix}")
            shutil.copyfile(photo, staging / names[-1])
        for name in names:  # whole files only: renamed into the folder
            os.replace(staging / name, app.home / "image-bucket" / name)

        seen: set[str] = set()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            seen |= set(_replicas(app.base_url))
            metrics = httpx.get(f"{app.base_url}/metrics", timeout=10).text
            done = f'tideflow_events_processed_total{{consumer="classify_image"}} {BURST}.0'
            if done in metrics:
                break
            time.sleep(0.25)
        assert "classify_image[1]" in seen, app.log()[-3000:]

        deadline = time.monotonic() + 60
        while _replicas(app.base_url) != {"classify_image[0]": "ready"}:
            assert time.monotonic() < deadline, app.log()[-3000:]
            time.sleep(0.25)
        assert app.stop() == 0
        log = app.log()
        assert re.search(r"classify_image: 1 -> 2 replicas .*: backlog of \d+ would take", log)
        assert re.search(r"classify_image: 2 -> 1 replicas .*under the 25% target", log)

        with duckdb.connect(str(app.home / "image_classification.duckdb"), read_only=True) as db:
            per_name = db.execute(
                "SELECT image_name, count(*) FROM image_classification GROUP BY image_name"
            ).fetchall()
        assert dict(per_name) == dict.fromkeys(names, 1)
    finally:
        app.close()
