"""Outages under a running ``tideflow run --stack gcp`` while uploads continue, 30 s each:
a BigQuery emulator of the test's own (persistent, so a restart keeps the tables) stopped,
then Pub/Sub unreachable (the run's Pub/Sub traffic goes through a proxy that cuts it).
Uploads are still accepted, consumers wait and resume, nothing fails or is dead-lettered,
every image is classified once afterwards."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.app.support import (
    PHOTOS,
    assert_classified,
    is_classified,
    upload,
    upload_during_outage,
    wait_for_status,
)
from tests.gcp.conftest import (
    Emulator,
    EventingStorage,
    free_port,
    start_bigquery_emulator,
)
from tests.gcp.support import start_gcp_app
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
    app = start_gcp_app(
        eventing_storage,
        tmp_path / "home",
        dataset_prefix="outage",
        BIGQUERY_EMULATOR_HOST=f"http://127.0.0.1:{rest}",
    )
    try:
        before = [upload(app, p.read_bytes(), p.name).json()["status_url"] for p in PHOTOS[:2]]
        for status_url in before:
            assert wait_for_status(app, status_url, timeout=90)["status"] == "classified"

        warehouse.stop()
        try:
            during = upload_during_outage(app, PHOTOS[:4], seconds=OUTAGE_SECONDS)
            assert "the warehouse is unavailable, retrying" in app.log()
        finally:
            warehouse = start_warehouse()

        assert_classified(app, during, timeout=120)
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
    # fake-gcs-server publishes to the emulator itself; only the app goes through the proxy.
    app = start_gcp_app(
        eventing_storage,
        tmp_path / "home",
        dataset_prefix="outage",
        PUBSUB_EMULATOR_HOST=f"127.0.0.1:{proxy.port}",
    )
    try:
        first = upload(app, PHOTOS[0].read_bytes(), PHOTOS[0].name).json()["status_url"]
        assert wait_for_status(app, first, timeout=90)["status"] == "classified"

        proxy.cut()
        try:
            during = upload_during_outage(app, PHOTOS[:4], seconds=OUTAGE_SECONDS)
            assert not any(is_classified(app, url) for url in during)
        finally:
            proxy.restore()

        assert_classified(app, during, timeout=120)
        results = httpx.get(f"{app.base_url}/api/results", params={"limit": 50}).json()
        assert results["total"] == 5
    finally:
        app.stop()
        proxy.close()
