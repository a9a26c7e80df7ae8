"""A small gcp flow for the runtime test: uploads -> Pub/Sub -> replica -> BigQuery (emulators).

Names come from the environment the test sets (GCPFLOW_BUCKET, GCPFLOW_DATASET), so the
replica processes, which import this module again, build the same primitives.
"""

from __future__ import annotations

import dataclasses
import datetime
import os

from tideflow import Flow, consumer
from tideflow.exceptions import NonRetryableError
from tideflow.io.gcp import BigQueryDataset, BigQueryTable, GCSBucket, GCSFileChangeStream
from tideflow.types import FileChangeEvent


@dataclasses.dataclass
class SizeRow:
    key: str
    generation: int
    size: int
    replica_pid: int
    measured_at: datetime.datetime


bucket = GCSBucket(bucket_name=os.environ["GCPFLOW_BUCKET"]).options(force_destroy=True)
stream = GCSFileChangeStream(bucket, max_attempts=2, lease_seconds=30)
dataset = BigQueryDataset(dataset_name=os.environ["GCPFLOW_DATASET"])
table = BigQueryTable(dataset, "sizes").options(schema=SizeRow)


@consumer(source=stream, sink=table, num_replicas=1, batch_size=4)
def measure(file_event: FileChangeEvent) -> SizeRow:
    data = file_event.blob
    if data.startswith(b"POISON"):
        raise NonRetryableError(f"{file_event.file_path} is poisoned")
    return SizeRow(
        key=file_event.file_path,
        generation=file_event.generation,
        size=len(data),
        replica_pid=os.getpid(),
        measured_at=datetime.datetime.now(datetime.UTC),
    )


app = Flow()
app.manage(bucket, dataset, table, stream)
app.add_consumer(measure)
