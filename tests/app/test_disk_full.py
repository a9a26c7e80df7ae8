"""A full or read-only disk under the app's state, on a real tmpfs (the tests run as root).

Uploads that cannot be made durable are refused with 507 (disk full) or 503 + Retry-After
and leave no file behind, so nothing refused is classified after a restart; the consumers
wait out a journal that cannot take their acks; /healthz says "degraded" (503) until
writes work again; everything accepted is classified exactly once.
"""

from __future__ import annotations

import contextlib
import io
import random
import sqlite3
import subprocess
import time
from pathlib import Path

import duckdb
import httpx
import psutil
import pytest
from PIL import Image

from image_classification.image_ids import parse_image_id
from tests.app.support import make_app, upload, wait_for_status
from tests.conftest import TideflowProcess, fill_disk, small_tmpfs

pytestmark = pytest.mark.slow


def _noise_png(rng: random.Random, side: int = 300) -> bytes:
    """A distinct, incompressible image (~270 KB): fills a small disk in a few uploads."""
    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=0)
    return out.getvalue()


def _health(app: TideflowProcess) -> httpx.Response:
    return httpx.get(f"{app.base_url}/healthz", timeout=10)


def _wait_health(app: TideflowProcess, status: str, *, timeout: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    answer: dict[str, object] = {}
    while time.monotonic() < deadline:
        answer = _health(app).json()
        if answer["status"] == status:
            return answer
        time.sleep(0.2)
    raise AssertionError(f"/healthz still {answer} after {timeout}s:\n{app.log()[-3000:]}")


def _assert_refused(answer: httpx.Response, statuses: set[int]) -> str:
    assert answer.status_code in statuses, (answer.status_code, answer.text)
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["retry-after"] == "10"
    detail: str = answer.json()["detail"]
    assert detail.startswith("The image was not stored: bucket image-bucket: "), detail
    return detail


def _stored_keys(home: Path) -> set[str]:
    root = home / "image-bucket"
    assert list((root / ".tideflow-tmp").iterdir()) == []  # no temp file left behind
    return {p.relative_to(root).as_posix() for p in (root / "uploads").glob("*")}


def _assert_each_classified_once(home: Path, accepted: list[str]) -> None:
    """After the run stopped: the bucket and the journal hold the accepted uploads and
    nothing else, each has one row, nothing failed."""
    keys = {parse_image_id(image_id)[0] for image_id in accepted}
    assert _stored_keys(home) == keys
    with contextlib.closing(sqlite3.connect(home / "journal" / "image-bucket.sqlite3")) as db:
        journaled = db.execute("SELECT key FROM objects").fetchall()
    assert sorted(key for (key,) in journaled) == sorted(keys)
    with duckdb.connect(str(home / "image_classification.duckdb"), read_only=True) as db:
        rows = db.execute("SELECT image_id FROM image_classification").fetchall()
        failures = db.execute("SELECT count(*) FROM image_classification_failures").fetchone()
    assert sorted(image_id for (image_id,) in rows) == sorted(accepted)
    assert failures == (0,)


def _restart_and_check(app: TideflowProcess, accepted: list[str]) -> None:
    """Stop cleanly, start again (its folder scan would journal a refused upload's file
    and classify it), and find exactly the accepted uploads."""
    assert app.stop() == 0, app.log()[-3000:]
    app.start("--replicas", "1")
    time.sleep(2)  # time for a ghost to be found and classified
    total = httpx.get(f"{app.base_url}/api/results?limit=1", timeout=10).json()["total"]
    assert total == len(accepted), app.log()[-3000:]
    assert app.stop() == 0, app.log()[-3000:]
    assert "Traceback" not in app.log(), app.log()[-5000:]
    _assert_each_classified_once(app.home, accepted)


def _check_recovery(app: TideflowProcess, accepted: list[str], rng: random.Random) -> None:
    """Once writes work again: /healthz ok, a new upload accepted, every accepted upload
    classified, and after a restart exactly those."""
    _wait_health(app, "ok")
    late = upload(app, _noise_png(rng), "after-recovery.png")
    assert late.status_code == 202, late.text
    accepted = [*accepted, late.json()["image_id"]]
    for image_id in accepted:
        status = wait_for_status(app, f"/api/images/{image_id}", timeout=90)
        assert status["status"] == "classified", status
    _restart_and_check(app, accepted)


def test_a_state_directory_filled_by_uploads(tmp_path: Path) -> None:
    """The whole TIDEFLOW_HOME on a 24 MB tmpfs, filled by uploads: 507 with a JSON detail,
    /healthz degraded; once space is freed everything accepted is classified once and
    nothing refused comes back after a restart."""
    rng = random.Random(5)
    with small_tmpfs(tmp_path / "disk", "24m") as disk:
        ballast = disk / "ballast"  # what the operator deletes to free space
        ballast.write_bytes(bytes(4 << 20))
        app = make_app(disk / "home")
        app.log_path = tmp_path / "run.log"  # not on the disk that fills up
        try:
            app.start("--replicas", "1")
            accepted: list[str] = []
            refused: list[httpx.Response] = []
            for n in range(200):
                answer = upload(app, _noise_png(rng), f"noise-{n}.png")
                if answer.status_code != 202:
                    refused.append(answer)
                    if len(refused) == 3:
                        break
                    continue
                accepted.append(answer.json()["image_id"])
            assert len(refused) == 3 and len(accepted) >= 10, (len(accepted), app.log()[-3000:])
            for answer in refused:
                assert "disk full" in _assert_refused(answer, {507})
            schema = httpx.get(f"{app.base_url}/openapi.json").json()
            assert {"503", "507"} <= set(schema["paths"]["/image-upload"]["post"]["responses"])
            assert _stored_keys(app.home) == {parse_image_id(i)[0] for i in accepted}
            health = _health(app)
            assert health.status_code == 503
            assert health.json()["status"] == "degraded"
            assert any("disk full" in problem for problem in health.json()["problems"])
            assert httpx.get(f"{app.base_url}/livez").status_code == 200

            ballast.unlink()
            _check_recovery(app, accepted, rng)
        finally:
            app.close()


def _replicas(app: TideflowProcess) -> list[psutil.Process]:
    assert app.process is not None
    children = psutil.Process(app.process.pid).children()
    return [c for c in children if "spawn_main" in " ".join(c.cmdline())]


def test_a_full_journal_refuses_uploads_and_the_run_waits_it_out(tmp_path: Path) -> None:
    """Only the journal's disk (a 4 MB tmpfs) is full: uploads get 507, the consumer's ack
    of work finished meanwhile is retried (the run stays up, SIGTERM exits 0), /healthz is
    degraded until space is freed; no refused upload is classified after a restart."""
    rng = random.Random(6)
    home = tmp_path / "home"
    with small_tmpfs(home / "journal", "4m") as journal_disk:
        app = make_app(home)
        try:
            app.start("--replicas", "1")
            first = upload(app, _noise_png(rng), "first.png").json()
            assert wait_for_status(app, first["status_url"])["status"] == "classified"
            replicas = _replicas(app)
            for replica in replicas:  # hold the work back until the disk is full
                replica.suspend()
            held = [upload(app, _noise_png(rng), f"held-{n}.png") for n in range(3)]
            assert [answer.status_code for answer in held] == [202] * 3
            ballast = fill_disk(journal_disk / "ballast")
            refused = [upload(app, _noise_png(rng), f"refused-{n}.png") for n in range(3)]
            for replica in replicas:
                replica.resume()
            for answer in refused:
                assert "disk full (committing its event journal)" in _assert_refused(answer, {507})

            deadline = time.monotonic() + 30
            while "cannot take acks" not in app.log() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert "cannot take acks" in app.log(), app.log()[-3000:]
            health = _health(app)
            assert health.status_code == 503, health.text
            assert "journal image-bucket: disk full" in health.json()["problems"]
            accepted = [first["image_id"]] + [answer.json()["image_id"] for answer in held]
            assert _stored_keys(home) == {parse_image_id(i)[0] for i in accepted}
            assert app.process is not None and app.process.poll() is None

            ballast.unlink()
            _check_recovery(app, accepted, rng)
        finally:
            app.close()


def _filesystem(path: Path) -> str:
    return subprocess.run(
        ["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_a_read_only_journal_refuses_uploads_with_503(tmp_path: Path) -> None:
    """The journal's files made immutable while the app runs (chattr +i): 503 with
    Retry-After, no file left in the bucket; after chattr -i uploads work again and the
    refused one is never classified."""
    if _filesystem(tmp_path) == "tmpfs":
        pytest.skip("on tmpfs, chattr +i does not stop writes through files already open")
    home = tmp_path / "home"
    journal = home / "journal"
    # Not the -shm file: SQLite maps it into memory, and writing to an immutable mapped
    # page kills the process with SIGBUS on ext4.
    immutable = [journal, journal / "image-bucket.sqlite3", journal / "image-bucket.sqlite3-wal"]
    rng = random.Random(7)
    app = make_app(home)
    try:
        app.start("--replicas", "1")
        first = upload(app, _noise_png(rng), "first.png").json()
        assert wait_for_status(app, first["status_url"])["status"] == "classified"
        locked = subprocess.run(["chattr", "+i", *map(str, immutable)], check=False)
        if locked.returncode != 0:
            pytest.skip("chattr +i is not available here")
        try:
            refused = upload(app, _noise_png(rng), "refused.png")
            _assert_refused(refused, {503})
            assert _stored_keys(home) == {parse_image_id(first["image_id"])[0]}
            health = _health(app)
            assert health.status_code == 503
            assert health.json()["problems"][0].startswith("journal image-bucket: ")
        finally:
            subprocess.run(["chattr", "-i", *map(str, immutable)], check=True)
        _check_recovery(app, [first["image_id"]], rng)
    finally:
        app.close()
