"""The whole app with ``--stack aws``: real ``tideflow run`` processes against moto's server
(S3 -> SQS notifications over real HTTP) with DuckDB, and with PostgreSQL for several
consumer machines.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import psycopg
import pytest
from PIL import Image

from image_classification.image_ids import image_id_for
from tests.app.support import CAT_LABELS, CHELSEA, PHOTOS, make_app, upload, wait_for_status
from tests.aws.support import (
    TABLE,
    aws_settings,
    failures_and_dead_letters,
    messages_in_queue,
    queue_url,
    row_counts,
    wait_until,
)
from tests.conftest import REPO, TideflowProcess

# Accented, CJK, emoji, and a macOS screenshot's narrow no-break space (U+202F).
UNICODE_NAMES = ["café crème.png", "写真 猫.png", "🐱 Screenshot 9.41\u202fAM.png"]


def _total(app: TideflowProcess) -> int:
    return int(httpx.get(f"{app.base_url}/api/results", timeout=10).json()["total"])


@pytest.fixture
def aws_app(moto_server: str, tmp_path: Path) -> Iterator[TideflowProcess]:
    app = make_app(tmp_path / "home", **aws_settings())
    app.start("--replicas", "1")
    yield app
    if app.process is not None:
        assert app.stop() == 0


def test_app_on_aws_with_duckdb(aws_app: TideflowProcess) -> None:
    app = aws_app
    bucket = app.env["S3_BUCKET_NAME"]

    # 1. The page's upload -> S3 -> SQS -> a row, shown by the API and the page.
    accepted = upload(app, CHELSEA.read_bytes(), "chelsea.png", content_type="image/png")
    assert accepted.status_code == 202, accepted.text
    status = wait_for_status(app, accepted.json()["status_url"], timeout=90)
    assert status["status"] == "classified", status
    assert CAT_LABELS & {c["label"] for c in status["classifications"]}
    results = httpx.get(f"{app.base_url}/api/results", params={"label": "tabby"}).json()
    assert results["total"] == 1 and results["rows"][0]["image_name"] == "chelsea.png"
    # File names in any script (S3 metadata is ASCII on the wire: sent as RFC 2047 words).
    for name in UNICODE_NAMES:
        accepted = upload(app, PHOTOS[1].read_bytes(), name, content_type="image/png")
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["image_name"] == name
        status = wait_for_status(app, accepted.json()["status_url"], timeout=60)
        assert status["status"] == "classified" and status["image_name"] == name, status

    # 2. 20 objects put straight into the bucket (as `aws s3 cp` would) -> 20 more rows,
    # a few of them with keys in other scripts.
    s3 = boto3.client("s3")
    for i in range(20):
        photo = PHOTOS[i % len(PHOTOS)]
        key = f"dropped/{UNICODE_NAMES[i]}" if i < 3 else f"dropped/{i} {photo.name}"
        s3.put_object(Bucket=bucket, Key=key, Body=photo.read_bytes())
    wait_until(lambda: _total(app) >= 24, timeout=120, what="24 rows", log=app.log)
    assert _total(app) == 24
    names = {r["image_name"] for r in httpx.get(f"{app.base_url}/api/results").json()["rows"]}
    assert set(UNICODE_NAMES) <= names

    # 3. A text file named .jpg -> failed with its reason, in the dead-letter queue.
    text = b"this is not a picture at all\n"
    put = s3.put_object(Bucket=bucket, Key="dropped/notes.jpg", Body=text)
    etag = put["ETag"].strip('"')
    assert etag == hashlib.md5(text).hexdigest()
    image_id = image_id_for("dropped/notes.jpg", etag)
    failed = wait_for_status(app, f"/api/images/{image_id}", timeout=60)
    assert failed["status"] == "failed", failed
    assert failed["error"]
    letters = app.cli("dead-letters", "list")
    assert letters.returncode == 0, letters.stderr
    assert "notes.jpg" in letters.stdout
    page = httpx.get(f"{app.base_url}/image-upload-results").text
    assert "chelsea.png" in page and "notes.jpg" in page
    status_cli = app.cli("status")
    assert status_cli.returncode == 0, status_cli.stderr
    # Redelivery never makes a second row: still 24 classified + 1 failed.
    assert _total(app) == 25
    # Sent back from the dead-letter queue, it is delivered again and fails again.
    retried = app.cli("dead-letters", "retry", "--all")
    assert retried.returncode == 0 and "1 event(s) sent back" in retried.stdout, retried.stderr
    wait_until(
        lambda: "notes.jpg" in app.cli("dead-letters", "list").stdout,
        timeout=60,
        what="the retried dead letter back in the DLQ",
        log=app.log,
    )
    assert wait_for_status(app, f"/api/images/{image_id}", timeout=30)["status"] == "failed"
    assert _total(app) == 25
    # Replaying every stored object with the same model adds no row.
    replayed = app.cli("replay", "--all")
    assert replayed.returncode == 0, replayed.stderr
    assert "25 event(s) replayed" in replayed.stdout
    queue = queue_url(app.env["SQS_QUEUE_NAME"])
    wait_until(
        lambda: messages_in_queue(queue) == 0,
        timeout=60,
        what="replayed events done",
        log=app.log,
    )
    assert _total(app) == 25

    # A second apply changes nothing; destroy removes the stream and tables and keeps the
    # non-empty bucket (no force_destroy), saying how to remove it. Idle workers wait in
    # 20 s long polls, yet the run stops at once.
    began = time.monotonic()
    assert app.stop() == 0
    assert time.monotonic() - began < 5
    plan = app.cli("plan")
    assert plan.returncode == 0, plan.stderr
    assert "create" not in plan.stdout and "update" not in plan.stdout
    # bucket, stream + its 3 parts, dataset, results + corrections + failures tables
    assert plan.stdout.count("no change") == 9
    assert "Found credentials" not in plan.stderr  # botocore's INFO lines stay quiet
    destroyed = app.cli("destroy", "--yes")
    assert destroyed.returncode != 0
    assert "not empty" in destroyed.stderr and "force_destroy" in destroyed.stderr
    assert (
        not boto3.client("sqs")
        .list_queues(QueueNamePrefix=app.env["SQS_QUEUE_NAME"])
        .get("QueueUrls")
    )
    app.env["S3_FORCE_DESTROY"] = "true"  # empties the bucket, then removes it
    assert app.cli("destroy", "--yes").returncode == 0
    assert bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def _png(i: int) -> bytes:
    image = Image.new("RGB", (64, 64), ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _processed(app: TideflowProcess) -> int:
    return len(re.findall(r"outcome=ok", app.log()))


def test_several_machines_share_the_work_with_postgres(
    moto_server: str, postgres_url: str, tmp_path: Path
) -> None:
    settings = aws_settings(WAREHOUSE="postgres", POSTGRES_URL=postgres_url)
    deployer = make_app(tmp_path / "deployer", **settings)
    service = make_app(tmp_path / "service", **settings)
    consumers = [make_app(tmp_path / f"consumer{n}", **settings) for n in (1, 2)]
    started = time.monotonic()
    phases: list[str] = []

    def mark(what: str) -> None:
        phases.append(f"{what} {time.monotonic() - started:.1f}s")

    try:
        # --only consumers creates nothing: before apply it stops and says so.
        refused = consumers[0].cli("run", "--only", "consumers", timeout=120)
        assert refused.returncode != 0
        assert "tideflow apply" in refused.stderr + refused.stdout
        s3 = boto3.client("s3")
        assert settings["S3_BUCKET_NAME"] not in {b["Name"] for b in s3.list_buckets()["Buckets"]}

        applied = deployer.cli("apply", "--yes", timeout=120)
        assert applied.returncode == 0, applied.stderr
        mark("applied")
        for consumer in consumers:
            consumer.launch("--only", "consumers", "--replicas", "1")
        service.start("--only", "service", wait_consumers=False)
        for consumer in consumers:
            consumer.wait_ready()
        mark("started")

        def send(i: int) -> None:
            answer = upload(service, _png(i), f"photo-{i}.png", content_type="image/png")
            assert answer.status_code == 202, answer.text

        def send_all(numbers: range) -> None:
            with concurrent.futures.ThreadPoolExecutor(6) as pool:
                list(pool.map(send, numbers))

        send_all(range(100))
        mark("100 uploaded")
        wait_until(
            lambda: row_counts(postgres_url)[0] >= 60 and all(_processed(c) for c in consumers),
            timeout=180,
            what="both consumers at work",
            log=lambda: consumers[0].log() + consumers[1].log(),
        )
        # kill -9 one consumer halfway, while the second half is being uploaded.
        mark(f"{row_counts(postgres_url)[0]} rows")
        uploader = threading.Thread(target=send_all, args=(range(100, 200),))
        uploader.start()
        time.sleep(1.0)
        done_by_killed = _processed(consumers[1])
        consumers[1].kill9()
        uploader.join(120)
        mark("200 uploaded")
        wait_until(
            lambda: row_counts(postgres_url)[0] >= 200,
            timeout=240,
            what="200 rows",
            log=consumers[0].log,
        )
        mark("200 rows")
        time.sleep(2)  # anything still in flight would show as a 201st row now
        assert row_counts(postgres_url) == (200, 200)
        assert failures_and_dead_letters(postgres_url, settings["SQS_QUEUE_NAME"]) == (0, 0)
        assert done_by_killed > 0 and _processed(consumers[0]) > 0
        print(  # shown with `pytest -s`: how the work was shared
            f"\nrows: 200; consumer 1 processed {_processed(consumers[0])}, consumer 2 "
            f"{done_by_killed} before its kill -9 (redeliveries count again); " + ", ".join(phases)
        )
        assert httpx.get(f"{service.base_url}/api/results").json()["total"] == 200
        # Any machine with POSTGRES_URL reads the warehouse directly.
        counted = deployer.cli("query", "SELECT COUNT(DISTINCT image_id) AS n FROM {table}")
        assert counted.returncode == 0, counted.stderr
        assert "200" in counted.stdout
        assert consumers[0].stop(signal.SIGTERM) == 0
    finally:
        for app in (service, *consumers):
            app.close()


def _readme_grants(suffix: str) -> str:
    """docs/stacks/postgres.md's grants for least-privilege roles, for this test's roles."""
    readme = (REPO / "docs/stacks/postgres.md").read_text()
    grants = readme.split("Grants for least-privilege roles", 1)[1].split("```sql\n", 1)[1]
    sql = grants.split("```", 1)[0]
    return sql.replace("tideflow_consumer", f"consumer_{suffix}").replace(
        "tideflow_service", f"service_{suffix}"
    )


def test_consumers_and_service_with_the_readme_s_grants(
    moto_server: str, postgres_url: str, tmp_path: Path
) -> None:
    """Roles with exactly the documented grants: rows, failures, corrections; then a grant
    taken away is waited out (no event dead-lettered for it) until it is given back. And an
    event whose 5 deliveries all crashed is recorded as failed on the 6th."""
    settings = aws_settings(WAREHOUSE="postgres", POSTGRES_URL=postgres_url)
    deployer = make_app(tmp_path / "deployer", **settings)
    applied = deployer.cli("apply", "--yes", timeout=180)
    assert applied.returncode == 0, applied.stderr
    suffix = uuid.uuid4().hex[:8]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(_readme_grants(suffix))
    as_role = {
        role: postgres_url.replace("postgres@", f"{role}_{suffix}:change-me@")
        for role in ("consumer", "service")
    }
    consumer = make_app(tmp_path / "consumer", **{**settings, "POSTGRES_URL": as_role["consumer"]})
    service = make_app(tmp_path / "service", **{**settings, "POSTGRES_URL": as_role["service"]})

    # Five consumers received an object and crashed before settling it (visibility 0).
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    queue = queue_url(settings["SQS_QUEUE_NAME"])
    put = s3.put_object(Bucket=settings["S3_BUCKET_NAME"], Key="dropped/crashed.png", Body=_png(1))
    crashed = image_id_for("dropped/crashed.png", put["ETag"].strip('"'))
    received = 0
    while received < 5:
        for message in sqs.receive_message(
            QueueUrl=queue,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            VisibilityTimeout=0,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", []):
            if "crashed.png" in message["Body"]:
                received = int(message["Attributes"]["ApproximateReceiveCount"])
    try:
        consumer.launch("--only", "consumers", "--replicas", "1")
        service.start("--only", "service", wait_consumers=False)
        consumer.wait_ready()
        failed = wait_for_status(service, f"/api/images/{crashed}", timeout=90)
        assert failed["status"] == "failed" and "never finished it" in failed["error"], failed
        assert messages_in_queue(queue_url(f"{settings['SQS_QUEUE_NAME']}-dlq")) == 1

        accepted = upload(service, _png(2), UNICODE_NAMES[1], content_type="image/png")
        assert accepted.status_code == 202, accepted.text
        status = wait_for_status(service, accepted.json()["status_url"], timeout=90)
        assert status["status"] == "classified" and status["image_name"] == UNICODE_NAMES[1]
        image_id = accepted.json()["image_id"]
        corrected = httpx.post(
            f"{service.base_url}/api/images/{image_id}/corrections", json={"labels": ["cat"]}
        )
        assert corrected.status_code < 300, corrected.text

        # The item index's grant taken away: the consumer waits, dead-letters nothing.
        items = f"{TABLE}__classifications_items"
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"REVOKE INSERT ON {items} FROM consumer_{suffix}")
        waiting = upload(service, _png(3), "waiting.png", content_type="image/png").json()
        wait_until(
            lambda: f"permission denied for table {items}" in consumer.log(),
            timeout=60,
            what="the permission error logged",
            log=consumer.log,
        )
        assert "the warehouse is unavailable, retrying" in consumer.log()
        pending = httpx.get(f"{service.base_url}{waiting['status_url']}").json()
        assert pending["status"] == "pending", pending
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"GRANT INSERT ON {items} TO consumer_{suffix}")
        status = wait_for_status(service, waiting["status_url"], timeout=90)
        assert status["status"] == "classified", status
        assert messages_in_queue(queue_url(f"{settings['SQS_QUEUE_NAME']}-dlq")) == 1
        assert row_counts(postgres_url) == (2, 2)
    finally:
        for app in (service, consumer):
            app.close()
