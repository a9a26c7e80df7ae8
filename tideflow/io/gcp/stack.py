"""The gcp stack: Cloud Storage, its Pub/Sub notifications, and BigQuery.

Settings: ``GcpSettings`` (``tideflow.io.gcp.settings``), read once when the stack is
made and passed to every primitive: ``GCP_PROJECT_ID`` (else the service-account key's or
Application Default Credentials' project), ``GCS_BUCKET_NAME`` (default
``<project>-<bucket name>``), ``BIGQUERY_DATASET`` and ``BIGQUERY_TABLE`` (default the
names the app passes), ``PUBSUB_ACK_DEADLINE`` (default 60, 10 to 600: seconds a pulled
event stays leased, extended while a replica works on it; after a crash it is delivered
again when it runs out), ``GCP_SERVICE_ACCOUNT_INFO`` and the emulator hosts.
"""

from __future__ import annotations

from tideflow.io.gcp.bigquery import BigQueryDataset, BigQueryTable
from tideflow.io.gcp.settings import GcpSettings
from tideflow.io.gcp.storage import GCSBucket
from tideflow.io.gcp.stream import GCSFileChangeStream
from tideflow.io.primitive import BucketPrimitive, Primitive
from tideflow.stacks import Stack


class GcpStack(Stack):
    name = "gcp"

    def __init__(self) -> None:
        self.settings = GcpSettings.from_environ()
        self.project_id = self.settings.project()

    def bucket(self, name: str) -> GCSBucket:
        return GCSBucket(
            project_id=self.project_id,
            bucket_name=self.settings.bucket_name or f"{self.project_id}-{name}",
            settings=self.settings,
        )

    def file_change_stream(self, bucket: BucketPrimitive) -> GCSFileChangeStream:
        if not isinstance(bucket, GCSBucket):
            raise TypeError(f"the gcp stack streams a GCSBucket's changes, not {bucket!r}")
        return GCSFileChangeStream(
            gcs_bucket=bucket,
            lease_seconds=self.settings.ack_deadline_seconds,
            settings=self.settings,
        )

    def dataset(self, name: str) -> BigQueryDataset:
        return BigQueryDataset(
            project_id=self.project_id,
            dataset_name=self.settings.dataset_name or name,
            settings=self.settings,
        )

    def table(self, dataset: Primitive, name: str) -> BigQueryTable:
        if not isinstance(dataset, BigQueryDataset):
            raise TypeError(f"the gcp stack's tables live in a BigQueryDataset, not {dataset!r}")
        return BigQueryTable(dataset, self.settings.table_name or name, settings=self.settings)
