"""The warehouse down while uploads continue: a BigQuery emulator of its own (persistent, so
a restart keeps the tables) stopped for 30 s under a running ``tideflow run --stack gcp`` ->
uploads still accepted, consumers wait with backoff, nothing failed or dead-lettered, every
image classified once after the restart."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.app.support import PHOTOS, make_app, upload, wait_for_status
from tests.gcp.conftest import (
    PROJECT,
    Emulator,
    EventingStorage,
    free_port,
    start_bigquery_emulator,
)

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 30


def test_a_warehouse_outage_is_waited_out(
    eventing_storage: Callable[[str, str], EventingStorage], tmp_path: Path
) -> None:
    rest, grpc = free_port(), free_port()
    data = tmp_path / "bigquery"
    data.mkdir()

    def start_warehouse() -> Emulator:
        return start_bigquery_emulator(
            rest, grpc, "--persistent", "--data-dir", str(data), log_dir=tmp_path
        )

    warehouse = start_warehouse()
    suffix = uuid.uuid4().hex[:8]
    bucket = f"images-{suffix}"
    eventing_storage(bucket, f"{bucket}-changes")
    app = make_app(
        tmp_path / "home",
        STACK="gcp",
        GCP_PROJECT_ID=PROJECT,
        GCS_BUCKET_NAME=bucket,
        BIGQUERY_DATASET=f"outage_{suffix}",
        BIGQUERY_EMULATOR_HOST=f"http://127.0.0.1:{rest}",
    )
    app.start("--replicas", "1")
    try:
        before = [upload(app, p.read_bytes(), p.name).json()["status_url"] for p in PHOTOS[:2]]
        for status_url in before:
            assert wait_for_status(app, status_url, timeout=90)["status"] == "classified"

        warehouse.stop()
        try:
            during = []
            for n, photo in enumerate(PHOTOS[:4]):
                answer = upload(app, photo.read_bytes(), f"during-{n}-{photo.name}")
                assert answer.status_code == 202, answer.text  # the bucket is up
                during.append(answer.json()["status_url"])
            time.sleep(OUTAGE_SECONDS)
            assert "the warehouse is unavailable, retrying" in app.log()
        finally:
            warehouse = start_warehouse()

        for status_url in during:
            status = wait_for_status(app, status_url, timeout=120)
            assert status["status"] == "classified", (status, app.log()[-3000:])
        results = httpx.get(f"{app.base_url}/api/results", params={"limit": 50}).json()
        assert results["total"] == 6  # failures would count too; duplicates would show
        assert len({row["image_id"] for row in results["rows"]}) == 6
    finally:
        app.stop()
        warehouse.stop()
