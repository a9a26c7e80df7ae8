"""A small non-image flow for the framework's integration tests.

It counts the words of each text file. Knobs, read from the environment so tests can
steer a real ``tideflow run``: TEXTFLOW_DELAY (seconds per event), TEXTFLOW_TOGETHER (each
call waits until that many run at once), BuildFlow's autoscaler options as
TEXTFLOW_<OPTION> (TEXTFLOW_MAX_REPLICAS=3 ...), a ``fault-fixed`` file in the state
directory that cures "POISON" files, and "CRASH" files that kill the replica process.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any

from tideflow import Flow, FlowOptions, Scope, Service, consumer, dependency
from tideflow.dependencies import TableReaderDependency
from tideflow.dependencies.bucket import BucketDependencyBuilder
from tideflow.home import tideflow_home
from tideflow.io.duckdb import DuckDBDataset, DuckDBTable
from tideflow.io.local import LocalBucket, LocalFileChangeStream
from tideflow.requests import UploadFile
from tideflow.types.local import LocalFileChangeEvent


@dataclasses.dataclass
class Word:
    text: str
    position: int


@dataclasses.dataclass
class TextRow:
    key: str
    generation: int
    size: int
    words: list[Word]
    replica_pid: int
    processed_at: datetime.datetime


_together = threading.Barrier(int(os.environ.get("TEXTFLOW_TOGETHER", "1")), timeout=20)
_autoscaling: dict[str, Any] = {
    name: kind(os.environ[f"TEXTFLOW_{name.upper()}"])
    for name, kind in (
        ("min_replicas", int),
        ("max_replicas", int),
        ("autoscale_frequency_secs", float),
        ("consumer_backlog_burn_threshold", float),
        ("consumer_cpu_percent_target", float),
    )
    if os.environ.get(f"TEXTFLOW_{name.upper()}")
}

bucket = LocalBucket("files")
file_change_stream = LocalFileChangeStream(bucket, max_attempts=3, lease_seconds=10)
dataset = DuckDBDataset("warehouse.duckdb")
table = DuckDBTable(dataset, "texts").options(schema=TextRow)


@dependency(scope=Scope.REPLICA)
class ReplicaState:
    """Records each construction, so tests can count them per replica process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        with open(tideflow_home() / "replica-builds.txt", "a") as log:
            log.write(f"{self.pid}\n")


def _lifecycle(scope: Scope) -> Any:
    """A generator dependency of ``scope`` that logs its setup and its ``finally``."""

    def resource() -> Iterator[str]:
        with open(tideflow_home() / "lifecycle.txt", "a") as log:
            log.write(f"open {scope.name} {os.getpid()}\n")
        try:
            yield scope.name
        finally:
            with open(tideflow_home() / "lifecycle.txt", "a") as log:
                log.write(f"close {scope.name} {os.getpid()}\n")

    resource.__qualname__ = f"lifecycle_{scope.name.lower()}"
    return dependency(scope=scope)(resource)


# Module attributes named as the functions' __qualname__: GLOBAL values travel to the
# replicas keyed by their provider, which pickles by reference.
lifecycle_global = _lifecycle(Scope.GLOBAL)
lifecycle_process = _lifecycle(Scope.PROCESS)
lifecycle_replica = _lifecycle(Scope.REPLICA)
lifecycle_no_scope = _lifecycle(Scope.NO_SCOPE)
GlobalResource = Annotated[str, lifecycle_global]
ProcessResource = Annotated[str, lifecycle_process]
ReplicaResource = Annotated[str, lifecycle_replica]
CallResource = Annotated[str, lifecycle_no_scope]


@dependency(scope=Scope.NO_SCOPE)
class Lifecycles:
    """Asks for one resource of every scope; the call one is built once per call."""

    def __init__(
        self,
        g: GlobalResource,
        p: ProcessResource,
        r: ReplicaResource,
        c: CallResource,
        again: CallResource,
    ) -> None:
        self.names = [g, p, r, c, again]


BucketDep = BucketDependencyBuilder(bucket)
Rows = TableReaderDependency(table)
service = Service(service_id="textflow")


@service.endpoint("/rows", method="GET")
def rows(results: Rows, lifecycles: Lifecycles) -> dict[str, int]:
    """Rows per key, read through the run process while the consumer writes."""
    result = results.query("SELECT key, count(*) FROM {table} GROUP BY key")
    return dict(result.rows)


@service.endpoint("/upload", method="POST", status_code=202)
def upload(text_file: UploadFile, bucket_dep: BucketDep) -> dict[str, object]:
    blob = bucket_dep.bucket.blob(text_file.filename or "unnamed.txt")
    generation = blob.upload_from_file(text_file.file)
    return {"key": blob.name, "generation": generation}


@consumer(source=file_change_stream, sink=table, batch_size=4, **_autoscaling)
def count_words(
    file_event: LocalFileChangeEvent, state: ReplicaState, lifecycles: Lifecycles, c: CallResource
) -> TextRow:
    text = file_event.blob.decode()
    if text.startswith("CRASH"):
        os._exit(3)  # the replica process dies mid-event
    if text.startswith("POISON") and not (tideflow_home() / "fault-fixed").exists():
        raise ValueError(f"cannot digest {file_event.file_path}")
    time.sleep(float(os.environ.get("TEXTFLOW_DELAY", "0")))
    _together.wait()
    return TextRow(
        key=file_event.file_path,
        generation=file_event.generation,
        size=file_event.size,
        words=[Word(text=w, position=i) for i, w in enumerate(text.split())],
        replica_pid=state.pid,
        processed_at=datetime.datetime.now(datetime.UTC),
    )


app = Flow(flow_options=FlowOptions())
app.manage(bucket, dataset, table, file_change_stream)
app.add_service(service)
app.add_consumer(count_words)
