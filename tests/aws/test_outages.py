"""Outages under a running ``tideflow run --stack aws`` while uploads continue, 30 s each:
PostgreSQL stopped, then SQS unreachable (the run's SQS traffic goes through a proxy that
cuts it). Uploads are still accepted, consumers wait and resume, nothing is dead-lettered,
every row is there afterwards, once."""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.app.support import (
    PHOTOS,
    assert_classified,
    is_classified,
    make_app,
    upload,
    upload_during_outage,
    wait_for_status,
)
from tests.aws.conftest import PostgresCluster
from tests.aws.support import (
    TABLE,
    aws_settings,
    messages_in_queue,
    queue_url,
    row_counts,
    wait_until,
)
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 30


def test_a_warehouse_outage_is_waited_out(
    moto_server: str, postgres_cluster: PostgresCluster, postgres_url: str, tmp_path: Path
) -> None:
    settings = aws_settings(WAREHOUSE="postgres", POSTGRES_URL=postgres_url)
    app = make_app(tmp_path / "home", **settings)
    app.start("--replicas", "1")
    try:
        for photo in PHOTOS[:3]:
            assert upload(app, photo.read_bytes(), photo.name).status_code == 202
        wait_until(lambda: row_counts(postgres_url)[0] == 3, timeout=60, what="3 rows", log=app.log)

        postgres_cluster.stop()
        try:
            upload_during_outage(app, PHOTOS[:6], seconds=OUTAGE_SECONDS)
            assert "the warehouse is unavailable, retrying" in app.log()
        finally:
            postgres_cluster.start()

        wait_until(
            lambda: row_counts(postgres_url)[0] >= 9, timeout=120, what="9 rows", log=app.log
        )
        time.sleep(2)  # a duplicate still in flight would show now
        assert row_counts(postgres_url) == (9, 9)
        with psycopg.connect(postgres_url) as conn:
            failures = conn.execute(f"SELECT COUNT(*) FROM {TABLE}_failures").fetchone()
        assert failures == (0,)
        assert messages_in_queue(queue_url(f"{settings['SQS_QUEUE_NAME']}-dlq")) == 0
    finally:
        app.stop()


def test_a_queue_outage_is_waited_out(moto_server: str, tmp_path: Path) -> None:
    moto = urllib.parse.urlsplit(moto_server)
    proxy = TcpProxy(moto.hostname or "127.0.0.1", moto.port or 80)
    settings = aws_settings(AWS_ENDPOINT_URL_SQS=f"http://127.0.0.1:{proxy.port}")
    app = make_app(tmp_path / "home", **settings)
    app.start("--replicas", "1")
    try:
        first = upload(app, PHOTOS[0].read_bytes(), PHOTOS[0].name).json()["status_url"]
        assert wait_for_status(app, first, timeout=60)["status"] == "classified"

        proxy.cut()
        try:
            during = upload_during_outage(app, PHOTOS[:4], seconds=OUTAGE_SECONDS)
            assert "pull failed, retrying" in app.log()
            assert not any(is_classified(app, url) for url in during)
        finally:
            proxy.restore()

        assert_classified(app, during, timeout=120)
        assert httpx.get(f"{app.base_url}/api/results").json()["total"] == 5
        assert messages_in_queue(queue_url(f"{settings['SQS_QUEUE_NAME']}-dlq")) == 0
    finally:
        app.stop()
        proxy.close()
