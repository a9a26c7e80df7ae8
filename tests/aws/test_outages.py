"""Outages under a running ``tideflow run --stack aws`` while uploads continue, 30 s each:
PostgreSQL stopped, then SQS unreachable (the run's SQS traffic goes through a proxy that
cuts it). Uploads are still accepted, consumers wait and resume, nothing is dead-lettered,
every row is there afterwards, once. Then a failover (connections cut, the server
read-only for a while) and a lock held on the table, made on the real server."""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path

import boto3
import httpx
import psycopg
import pytest

from image_classification.image_ids import image_id_for
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
    failures_and_dead_letters,
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
        assert failures_and_dead_letters(postgres_url, settings["SQS_QUEUE_NAME"]) == (0, 0)
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


def _as_superuser(postgres_url: str, *statements: str) -> None:
    base = postgres_url.rsplit("/", 1)[0]
    with psycopg.connect(f"{base}/postgres?sslmode=disable", autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _fail_over(postgres_url: str, *, read_only: bool) -> None:
    """What a consumer sees in an RDS/Aurora failover: its connections cut, and new ones
    landing on a writer that is now read-only (a stale DNS entry) until DNS catches up."""
    name = postgres_url.rsplit("/", 1)[1].split("?")[0]
    setting = "SET default_transaction_read_only = on" if read_only else "RESET ALL"
    _as_superuser(
        postgres_url,
        f'ALTER DATABASE "{name}" {setting}',
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
    )


def test_a_failover_and_a_lock_are_waited_out(
    moto_server: str, postgres_url: str, tmp_path: Path
) -> None:
    """A read-only writer after a failover, and a write waiting on a lock, are waited out
    with the leases kept (visibility 10 s): no event is delivered twice or dead-lettered
    for them. A file that fails for good meanwhile is recorded once the warehouse is back."""
    settings = aws_settings(WAREHOUSE="postgres", POSTGRES_URL=postgres_url)
    app = make_app(tmp_path / "home", **settings)
    app.start("--replicas", "2")
    try:
        first = upload(app, PHOTOS[0].read_bytes(), PHOTOS[0].name).json()["status_url"]
        assert wait_for_status(app, first, timeout=60)["status"] == "classified"

        _fail_over(postgres_url, read_only=True)
        try:
            photo = upload(app, PHOTOS[1].read_bytes(), PHOTOS[1].name).json()["status_url"]
            put = boto3.client("s3").put_object(
                Bucket=settings["S3_BUCKET_NAME"], Key="dropped/notes.jpg", Body=b"not a picture"
            )
            text = f"/api/images/{image_id_for('dropped/notes.jpg', put['ETag'].strip(chr(34)))}"
            wait_until(
                lambda: "read-only transaction" in app.log(),
                timeout=60,
                what="writes refused as read-only",
                log=app.log,
            )
            time.sleep(15)  # longer than the visibility timeout
            for status_url in (photo, text):
                status = wait_for_status(app, status_url, until=frozenset({"pending"}))
                assert status["status"] == "pending", status
        finally:
            _fail_over(postgres_url, read_only=False)
        assert wait_for_status(app, photo, timeout=90)["status"] == "classified"
        failed = wait_for_status(app, text, timeout=90)
        assert failed["status"] == "failed" and failed["error"], failed

        with psycopg.connect(postgres_url) as holder:
            holder.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")  # as ALTER TABLE
            locked = upload(app, PHOTOS[2].read_bytes(), PHOTOS[2].name).json()["status_url"]
            wait_until(
                lambda: "lock timeout" in app.log(), timeout=60, what="a lock timeout", log=app.log
            )
            time.sleep(5)
        assert wait_for_status(app, locked, timeout=90)["status"] == "classified"

        assert "attempt=2" not in app.log()  # leases were kept all along
        assert row_counts(postgres_url) == (3, 3)
        assert failures_and_dead_letters(postgres_url, settings["SQS_QUEUE_NAME"]) == (1, 1)
    finally:
        app.stop()
