"""The warehouse down while uploads continue: PostgreSQL stopped for 30 s under a running
``tideflow run --stack aws`` -> uploads still accepted, consumers wait with backoff, nothing
dead-lettered, every row there after the restart, once."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from tests.app.support import PHOTOS, make_app, upload
from tests.aws.conftest import PostgresCluster
from tests.aws.support import (
    TABLE,
    aws_settings,
    messages_in_queue,
    queue_url,
    row_counts,
    wait_until,
)

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
        wait_until(
            lambda: row_counts(postgres_url)[0] == 3, timeout=60, what="3 rows", log=app.log()
        )

        postgres_cluster.stop()
        try:
            for n, photo in enumerate(PHOTOS[:6]):
                answer = upload(app, photo.read_bytes(), f"during-{n}-{photo.name}")
                assert answer.status_code == 202, answer.text  # the bucket is up
            time.sleep(OUTAGE_SECONDS)
            assert "the warehouse is unavailable, retrying" in app.log()
        finally:
            postgres_cluster.start()

        wait_until(
            lambda: row_counts(postgres_url)[0] >= 9, timeout=120, what="9 rows", log=app.log()
        )
        time.sleep(2)  # a duplicate still in flight would show now
        assert row_counts(postgres_url) == (9, 9)
        with psycopg.connect(postgres_url) as conn:
            failures = conn.execute(f"SELECT COUNT(*) FROM {TABLE}_failures").fetchone()
        assert failures == (0,)
        assert messages_in_queue(queue_url(f"{settings['SQS_QUEUE_NAME']}-dlq")) == 0
    finally:
        app.stop()
