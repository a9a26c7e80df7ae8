"""Soak: uploads keep coming while the run process and replicas are killed with SIGKILL and
restarted as a supervisor would; afterwards every upload has exactly one row, none failed.

Scaled to CI (200 uploads, 2 kills of the run process and 4 of replicas); ``make fuzz``
(FUZZ_LONG=1) runs 1,000 uploads with 40 kills.
"""

from __future__ import annotations

import io
import os
import random
import threading
import time
from pathlib import Path

import duckdb
import httpx
import psutil
import pytest
from PIL import Image

from image_classification.image_ids import parse_image_id
from tests.app.support import make_app
from tests.conftest import TideflowProcess

pytestmark = [pytest.mark.slow, pytest.mark.fuzz]

LONG = os.environ.get("FUZZ_LONG") == "1"
UPLOADS = int(os.environ.get("SOAK_UPLOADS") or (1000 if LONG else 200))
RUN_KILLS, REPLICA_KILLS = (10, 30) if LONG else (2, 4)
SEED = int(os.environ.get("FUZZ_SEED") or 1122)


def _images(count: int) -> list[bytes]:
    rng = random.Random(SEED)
    images = []
    for _ in range(count):
        color = tuple(rng.randrange(256) for _ in range(3))
        out = io.BytesIO()
        Image.new("RGB", (48, 40), color).save(out, format="PNG")
        images.append(out.getvalue())
    return images


def _replicas(app: TideflowProcess) -> list[psutil.Process]:
    if app.process is None:
        return []
    try:
        children = psutil.Process(app.process.pid).children()
    except psutil.NoSuchProcess:
        return []
    return [c for c in children if "spawn_main" in " ".join(c.cmdline())]


def _wait_healthy(app: TideflowProcess, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{app.base_url}/healthz", timeout=2).json()["consumers_ready"]:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"not healthy after {timeout}s:\n{app.log()[-3000:]}")


def _stored_keys(home: Path) -> set[str]:
    root = home / "image-bucket"
    return {p.relative_to(root).as_posix() for p in (root / "uploads").glob("*") if p.is_file()}


def test_kill9_soak_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    app = make_app(tmp_path / "home")
    images = _images(16)
    accepted: list[str] = []
    stop = threading.Event()

    def uploader() -> None:
        i = 0
        while len(accepted) < UPLOADS and not stop.is_set():
            files = {"image_file": (f"soak-{i}.png", images[i % len(images)], "image/png")}
            i += 1
            try:
                response = httpx.post(f"{app.base_url}/image-upload", files=files, timeout=10)
            except httpx.HTTPError:
                time.sleep(0.2)  # down: a supervisor is restarting it
                continue
            if response.status_code == 202:
                accepted.append(response.json()["image_id"])
            else:
                assert response.status_code >= 500, response.text
                time.sleep(0.2)
            time.sleep(0.03)

    rng = random.Random(SEED)
    kills = {"run": 0, "replica": 0}
    try:
        app.start("--replicas", "2")
        thread = threading.Thread(target=uploader, daemon=True)
        thread.start()
        plan = ["run"] * RUN_KILLS + ["replica"] * REPLICA_KILLS
        rng.shuffle(plan)
        deadline = time.monotonic() + (900 if LONG else 150)
        while plan and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.8, 2.0))
            replicas = _replicas(app)
            if plan.pop() == "run" or not replicas:
                app.kill9()
                kills["run"] += 1
                app.start("--replicas", "2", wait_consumers=False)
            else:
                rng.choice(replicas).kill()
                kills["replica"] += 1
        thread.join(120)  # the rest of the uploads, with nothing killed any more
        stop.set()
        assert not thread.is_alive()
        _wait_healthy(app)

        keys = _stored_keys(app.home)
        assert len(accepted) >= UPLOADS
        assert {parse_image_id(i)[0] for i in accepted} <= keys
        # Every stored object (accepted, or stored just before a kill cut the answer off)
        # gets its row: wait for the consumers to catch up.
        deadline = time.monotonic() + 120
        total = 0
        while time.monotonic() < deadline:
            total = httpx.get(f"{app.base_url}/api/results?limit=1", timeout=10).json()["total"]
            if total >= len(keys):
                break
            time.sleep(0.5)
        page = httpx.get(f"{app.base_url}/api/results?limit=200", timeout=10).json()
        failed = [row for row in page["rows"] if row["status"] != "classified"]
        assert failed == [], failed[:3]
        assert app.stop() == 0

        with duckdb.connect(str(app.home / "image_classification.duckdb"), read_only=True) as db:
            rows = db.execute(
                "SELECT image_id, count(*) FROM image_classification GROUP BY image_id"
            ).fetchall()
        per_key = {parse_image_id(image_id)[0]: count for image_id, count in rows}
        lost = keys - set(per_key)
        duplicated = {key: n for key, n in per_key.items() if n > 1}
        print(
            f"soak: {len(accepted)} accepted, {len(keys)} stored, {len(rows)} rows, "
            f"kills {kills}, lost {len(lost)}, duplicated {len(duplicated)}"
        )
        assert kills["run"] >= 1 and kills["replica"] >= 1, kills
        assert lost == set(), sorted(lost)[:5]
        assert duplicated == {}
        assert set(per_key) == keys
        assert total == len(keys)  # nothing dead-lettered: each object is one classified row
    finally:
        stop.set()
        app.close()
