"""Several machines on the gcp stack: one ``run --only service``, two ``run --only consumers``.

Each process has its own ``TIDEFLOW_HOME`` (as separate machines would) and they share
only the emulators: fake-gcs-server (which publishes each new object to Pub/Sub itself),
Google's Pub/Sub emulator and bqemulator. 200 uploads become exactly 200 distinct rows,
both consumers take part, and a consumer killed with SIGKILL halfway loses nothing: its
leases run out and Pub/Sub hands the events to the other one. Nothing is dead-lettered.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from google.cloud import bigquery  # type: ignore[attr-defined]

from tests.app.support import CHELSEA, make_app, upload
from tests.conftest import TideflowProcess
from tests.gcp.conftest import PROJECT, EventingStorage
from tideflow.io.gcp import GCSBucket, GCSFileChangeStream
from tideflow.io.gcp.clients import bigquery_client

UPLOADS = 200


def handled(machine: TideflowProcess) -> int:
    """Events this machine's consumer finished (its worker logs one line per event)."""
    return machine.log().count("outcome=ok")


@pytest.fixture
def machines(
    eventing_storage: Callable[[str, str], EventingStorage],
    bigquery_emulator: str,
    tmp_path: Path,
) -> Iterator[Callable[[str], TideflowProcess]]:
    suffix = uuid.uuid4().hex[:8]
    bucket = f"machines-{suffix}"
    eventing_storage(bucket, f"{bucket}-changes")
    settings = {
        "STACK": "gcp",
        "GCP_PROJECT_ID": PROJECT,
        "GCS_BUCKET_NAME": bucket,
        "BIGQUERY_DATASET": f"machines_{suffix}",
        "MODEL_THREADS": "1",
        # The killed consumer's leases run out after 10 s, not the default minute.
        "PUBSUB_ACK_DEADLINE": "10",
    }
    made: list[TideflowProcess] = []

    def machine(name: str) -> TideflowProcess:
        made.append(make_app(tmp_path / name, **settings))
        return made[-1]

    yield machine
    for process in made:
        process.close()


def test_one_service_and_two_consumer_machines_make_each_row_once(
    machines: Callable[[str], TideflowProcess],
) -> None:
    service, first, second = machines("service"), machines("consumer-1"), machines("consumer-2")

    # Consumer machines need no admin rights: before `apply` they refuse to start.
    refused = first.cli("run", "--only", "consumers", "--replicas", "1", timeout=120)
    assert refused.returncode != 0
    assert "tideflow apply" in refused.stdout + refused.stderr

    applied = service.cli("apply", "--yes", timeout=120)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    service.start("--only", "service", wait_consumers=False)
    first.start("--only", "consumers", "--replicas", "1")
    second.start("--only", "consumers", "--replicas", "1")

    photo = CHELSEA.read_bytes()

    def send(index: int) -> str:
        answer = upload(service, photo, f"cat-{index:03d}.png", content_type="image/png")
        assert answer.status_code == 202, answer.text
        return str(answer.json()["image_id"])

    with ThreadPoolExecutor(4) as pool:
        ids = set(pool.map(send, range(UPLOADS)))
    assert len(ids) == UPLOADS

    # Kill one consumer machine halfway, as a crash would (its replica goes with it).
    deadline = time.monotonic() + 300
    while handled(first) + handled(second) < UPLOADS // 2:
        assert time.monotonic() < deadline, first.log()[-2000:] + second.log()[-2000:]
        time.sleep(0.2)
    first_did = handled(first)
    first.kill9()

    def total() -> int:
        return int(httpx.get(f"{service.base_url}/api/results", timeout=30).json()["total"])

    while total() < UPLOADS:
        assert time.monotonic() < deadline, second.log()[-3000:]
        time.sleep(1)
    time.sleep(2)  # Room for a late duplicate to show.

    assert first_did > 0
    assert handled(second) > 0
    settings = service.env
    table = f"{PROJECT}.{settings['BIGQUERY_DATASET']}.image_classification"
    client: bigquery.Client = bigquery_client(PROJECT)
    (row,) = client.query(
        f"SELECT COUNT(DISTINCT image_id) AS ids, COUNT(*) AS rows FROM `{table}`"
    ).result()
    assert row["ids"] == UPLOADS
    print(f"rows written {row['rows']} for {UPLOADS} images (duplicates are insertId retries)")
    assert total() == UPLOADS

    stream = GCSFileChangeStream(
        GCSBucket(project_id=PROJECT, bucket_name=settings["GCS_BUCKET_NAME"])
    )
    assert stream.dead_letter_queue().count() == 0
    failures = client.query(f"SELECT COUNT(*) AS n FROM `{table}_failures`").result()
    assert next(iter(failures))["n"] == 0
    assert second.stop() == 0
    assert service.stop() == 0
