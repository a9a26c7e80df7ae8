"""The serving image on the gcp stack: a service and two consumer containers against
fake-gcs-server (which publishes each new object to Pub/Sub), Google's Pub/Sub emulator
and bqemulator, on the host's network (tests.containers.scenario)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from google.cloud import bigquery  # type: ignore[attr-defined]

from tests.containers.podman import Podman
from tests.containers.scenario import CloudStack, run_machines
from tests.gcp.conftest import PROJECT, EventingStorage
from tideflow.io.gcp import GCSBucket, GCSFileChangeStream
from tideflow.io.gcp.clients import bigquery_client, storage_client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def test_service_and_consumer_containers_on_gcp(
    podman: Podman,
    serving_image: str,
    eventing_storage: Callable[[str, str], EventingStorage],
    pubsub_emulator: str,
    bigquery_emulator: str,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    bucket = f"containers-{suffix}"
    storage = eventing_storage(bucket, f"{bucket}-changes")
    dataset = f"containers_{suffix}"
    env = {
        "STACK": "gcp",
        "GCP_PROJECT_ID": PROJECT,
        "GCS_BUCKET_NAME": bucket,
        "BIGQUERY_DATASET": dataset,
        "STORAGE_EMULATOR_HOST": storage.url,
        "PUBSUB_EMULATOR_HOST": pubsub_emulator,
        "BIGQUERY_EMULATOR_HOST": bigquery_emulator,
        "MODEL_THREADS": "1",
        # A killed consumer's events come back after 10 s (the shortest ack deadline).
        "PUBSUB_ACK_DEADLINE": "10",
    }
    table = f"{PROJECT}.{dataset}.image_classification"

    def put_object(key: str, data: bytes) -> None:
        storage_client(PROJECT).bucket(bucket).blob(key).upload_from_string(data)

    def distinct_rows() -> int:
        client: bigquery.Client = bigquery_client(PROJECT)
        (row,) = client.query(f"SELECT COUNT(DISTINCT image_id) AS ids FROM `{table}`").result()
        return int(row["ids"])

    stack = CloudStack(env=env, put_object=put_object, distinct_rows=distinct_rows)
    run_machines(podman, serving_image, stack)
    stream = GCSFileChangeStream(GCSBucket(project_id=PROJECT, bucket_name=bucket))
    assert stream.dead_letter_queue().count() == 0
