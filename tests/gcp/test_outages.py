"""Outages under a running ``tideflow run --stack gcp`` while uploads continue, 30 s each:
a BigQuery emulator of the test's own (persistent, so a restart keeps the tables) stopped,
then Pub/Sub unreachable (the run's Pub/Sub traffic goes through a proxy that cuts it).
Uploads are still accepted, consumers wait and resume, nothing fails or is dead-lettered,
every image is classified once afterwards."""

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
from tests.tcp_proxy import TcpProxy

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


def test_a_queue_outage_is_waited_out(
    eventing_storage: Callable[[str, str], EventingStorage],
    pubsub_emulator: str,
    bigquery_emulator: str,
    tmp_path: Path,
) -> None:
    host, port = pubsub_emulator.rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    suffix = uuid.uuid4().hex[:8]
    bucket = f"images-{suffix}"
    eventing_storage(bucket, f"{bucket}-changes")  # it publishes to the emulator itself
    app = make_app(
        tmp_path / "home",
        STACK="gcp",
        GCP_PROJECT_ID=PROJECT,
        GCS_BUCKET_NAME=bucket,
        BIGQUERY_DATASET=f"queue_outage_{suffix}",
        PUBSUB_EMULATOR_HOST=f"127.0.0.1:{proxy.port}",
    )
    app.start("--replicas", "1")
    try:
        first = upload(app, PHOTOS[0].read_bytes(), PHOTOS[0].name).json()["status_url"]
        assert wait_for_status(app, first, timeout=90)["status"] == "classified"

        proxy.cut()
        try:
            during = []
            for n, photo in enumerate(PHOTOS[:4]):
                answer = upload(app, photo.read_bytes(), f"during-{n}-{photo.name}")
                assert answer.status_code == 202, answer.text  # Cloud Storage is up
                during.append(answer.json()["status_url"])
            time.sleep(OUTAGE_SECONDS)
            assert all(
                httpx.get(f"{app.base_url}{url}").json()["status"] != "classified" for url in during
            )
        finally:
            proxy.restore()

        for status_url in during:
            status = wait_for_status(app, status_url, timeout=120)
            assert status["status"] == "classified", (status, app.log()[-3000:])
        results = httpx.get(f"{app.base_url}/api/results", params={"limit": 50}).json()
        assert results["total"] == 5
    finally:
        app.stop()
        proxy.close()
