"""The gcp stack end to end: apply, upload, a replica classifies, rows land once, destroy.

Cloud Storage is fake-gcs-server, which publishes each new object to Google's Pub/Sub
emulator itself; BigQuery is bqemulator. The consumer runs in a real replica
process behind ``ConsumerWorker``, so events cross a process boundary pickled.
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.gcp.conftest import EventingStorage, unique
from tideflow import infra
from tideflow.flow import Flow
from tideflow.io.gcp import BigQueryTable, GCSBucket, GCSFileChangeStream
from tideflow.io.gcp.notifications import finalize_message
from tideflow.io.primitive import PlanAction
from tideflow.runtime.loader import load_flow
from tideflow.runtime.replica import ReplicaProcess, ReplicaSpec
from tideflow.runtime.worker import ConsumerWorker

FLOW_DIR = Path(__file__).parent / "gcpflow"


@pytest.fixture
def gcpflow(
    eventing_storage: Callable[[str, str], EventingStorage], bigquery_emulator: str
) -> Iterator[tuple[Flow, ModuleType]]:
    name = unique("flow")
    eventing_storage(name, f"{name}-changes")
    with pytest.MonkeyPatch.context() as env:
        # Replica processes inherit these and build the same primitives.
        env.setenv("GCPFLOW_BUCKET", name)
        env.setenv("GCPFLOW_DATASET", unique("flow").replace("-", "_"))
        sys.modules.pop("gcpflow", None)
        flow = load_flow("gcpflow:app", FLOW_DIR)
        yield flow, sys.modules["gcpflow"]
        infra.destroy(flow)
        sys.modules.pop("gcpflow", None)


def wait_for(check: Callable[[], bool], *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {check.__doc__}")
        time.sleep(0.2)


def test_uploads_become_rows_once_and_poison_becomes_a_dead_letter(
    gcpflow: tuple[Flow, ModuleType],
) -> None:
    flow, module = gcpflow
    bucket: GCSBucket = module.bucket
    stream: GCSFileChangeStream = module.stream
    table: BigQueryTable = module.table

    assert {s.action for s in infra.apply(flow)} == {PlanAction.CREATE}
    assert not any(s.changes for s in infra.plan(flow))

    stop = threading.Event()
    fatal: list[str] = []
    source = stream.source()
    worker = ConsumerWorker(
        replica=ReplicaProcess(
            ReplicaSpec(
                entry_point="gcpflow:app",
                project_dir=str(FLOW_DIR),
                consumer_name="measure",
                index=0,
                count=1,
                num_concurrency=1,
                global_values={},
                log_level="WARNING",
            )
        ),
        source=source,
        sink=table.sink(),
        failures=table.failure_log(),
        batch_size=4,
        lease_seconds=stream.lease_seconds,
        event_timeout=60,
        stop=stop,
        on_fatal=fatal.append,
    )
    worker.start()
    try:
        for name, data in (("a.png", b"aaaa"), ("b.png", b"bb"), ("bad.png", b"POISON!")):
            blob = bucket.client().blob(name)
            blob.upload_from_file(io.BytesIO(data))
            if name == "a.png":
                # Cloud Storage delivers notifications at least once: a second copy.
                data, attributes = finalize_message(blob._properties, notification_config="x")
                stream.pubsub().publish(stream.topic, data, attributes)
        reader = table.reader()
        failures = table.failure_log()

        def rows_and_dead_letter() -> bool:
            """two rows and one dead letter"""
            return (
                reader.count() == 2
                and failures.for_object(bucket.bucket_name, "bad.png") is not None
            )

        wait_for(rows_and_dead_letter)
        time.sleep(1.0)  # Room for the duplicate to land, if it were going to show.
        assert fatal == []
        rows = {r["key"]: r for r in reader.select(order_by="key").records()}
        assert {k: r["size"] for k, r in rows.items()} == {"a.png": 4, "b.png": 2}
        assert rows["a.png"]["replica_pid"] != os.getpid()
        assert reader.count() == 2
        failure = failures.for_object(bucket.bucket_name, "bad.png")
        assert failure is not None
        assert failure.error == "bad.png is poisoned"
        (letter,) = stream.dead_letter_queue().list()
        assert letter.event.file_path == "bad.png"
    finally:
        stop.set()
        worker.join(15)
        source.close()

    assert {s.action for s in infra.destroy(flow)} == {PlanAction.DELETE}
    assert not any(s.changes for s in infra.plan_destroy(flow))
