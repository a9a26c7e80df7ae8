"""The gcp stack end to end: apply, upload, a replica classifies, rows land once, destroy.

Cloud Storage and BigQuery are the emulators; Pub/Sub is the in-memory fake, fed with
the notifications Cloud Storage would publish. The consumer runs in a real replica
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

from tests.gcp.conftest import unique
from tideflow import infra
from tideflow.flow import Flow
from tideflow.io.gcp import BigQueryTable, GCSBucket, GCSFileChangeStream
from tideflow.io.primitive import PlanAction
from tideflow.runtime.loader import load_flow
from tideflow.runtime.replica import ReplicaProcess, ReplicaSpec
from tideflow.runtime.worker import ConsumerWorker

FLOW_DIR = Path(__file__).parent / "gcpflow"


@pytest.fixture
def gcpflow(gcs_emulator: str, bigquery_emulator: str) -> Iterator[tuple[Flow, ModuleType]]:
    with pytest.MonkeyPatch.context() as env:
        # Replica processes inherit these and build the same primitives.
        env.setenv("GCPFLOW_BUCKET", unique("flow"))
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
                global_values={},
                log_level="WARNING",
            )
        ),
        source=source,
        sink=table.sink(),
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
            module.notifications.object_finalized(blob._properties)
            if name == "a.png":
                # Cloud Storage delivers notifications at least once.
                module.notifications.object_finalized(blob._properties)
        reader = table.reader()

        def rows_and_dead_letter() -> bool:
            """two rows and one dead letter"""
            return reader.count() == 2 and source.dead_letter_for("bad.png") is not None

        wait_for(rows_and_dead_letter)
        time.sleep(1.0)  # Room for the duplicate to land, if it were going to show.
        assert fatal == []
        rows = {r["key"]: r for r in reader.select(order_by="key").records()}
        assert {k: r["size"] for k, r in rows.items()} == {"a.png": 4, "b.png": 2}
        assert rows["a.png"]["replica_pid"] != os.getpid()
        assert reader.count() == 2
        letter = source.dead_letter_for("bad.png")
        assert letter is not None
        assert letter.error == "bad.png is poisoned"
        assert stream.pubsub().backlog(stream.subscription) == 0  # type: ignore[attr-defined]
    finally:
        stop.set()
        worker.join(15)

    assert {s.action for s in infra.destroy(flow)} == {PlanAction.DELETE}
    assert not any(s.changes for s in infra.plan_destroy(flow))
