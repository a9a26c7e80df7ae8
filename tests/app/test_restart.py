"""Stopping and starting the app keeps its rows; files dropped in meanwhile are classified."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from tests.app.support import CHELSEA, COFFEE, make_app, upload, wait_for_status

pytestmark = pytest.mark.slow


def test_rows_survive_a_restart(tmp_path: Path) -> None:
    app = make_app(tmp_path / "home")
    try:
        app.start("--replicas", "1")
        accepted = upload(app, CHELSEA.read_bytes(), "before-restart.png").json()
        before = wait_for_status(app, accepted["status_url"])
        assert before["status"] == "classified"
        assert app.stop() == 0

        # Dropped into the bucket folder while nothing runs: found by the scan at start.
        staging = tmp_path / "while-stopped.png"
        shutil.copyfile(COFFEE, staging)
        os.replace(staging, app.home / "image-bucket" / "while-stopped.png")

        app.start("--replicas", "1")
        assert wait_for_status(app, accepted["status_url"]) == before
        deadline = time.monotonic() + 60
        names: list[str] = []
        while time.monotonic() < deadline:
            rows = httpx.get(f"{app.base_url}/api/results").json()["rows"]
            names = [row["image_name"] for row in rows]
            if "while-stopped.png" in names:
                break
            time.sleep(0.2)
        assert sorted(names) == ["before-restart.png", "while-stopped.png"], app.log()[-3000:]
    finally:
        app.close()
