"""The gcp stack: Cloud Storage, its Pub/Sub notifications, and BigQuery.

Settings (environment): ``GCP_PROJECT_ID`` (else the service-account key's or
Application Default Credentials' project), ``GCS_BUCKET_NAME`` (default
``<project>-<bucket name>``), ``BIGQUERY_DATASET`` and ``BIGQUERY_TABLE`` (default the
names the app passes), ``PUBSUB_ACK_DEADLINE`` (default 60, 10 to 600: seconds a pulled
event stays leased, extended while a replica works on it; after a crash it is delivered
again when it runs out), ``GCP_SERVICE_ACCOUNT_INFO`` and the emulator hosts (read by
``tideflow.io.gcp.clients``).
"""

from __future__ import annotations

import os

from tideflow.io.gcp.bigquery import BigQueryDataset, BigQueryTable
from tideflow.io.gcp.clients import PROJECT_ENV, resolve_project
from tideflow.io.gcp.storage import GCSBucket
from tideflow.io.gcp.stream import GCSFileChangeStream
from tideflow.io.primitive import BucketPrimitive, Primitive
from tideflow.stacks import Stack, seconds_setting


class GcpStack(Stack):
    name = "gcp"

    def __init__(self) -> None:
        # GCP_PROJECT_ID, else the key's or Application Default Credentials' project.
        self.project_id = resolve_project(os.environ.get(PROJECT_ENV, "").strip() or None)

    def bucket(self, name: str) -> GCSBucket:
        bucket_name = _setting("GCS_BUCKET_NAME") or f"{self.project_id}-{name}"
        return GCSBucket(project_id=self.project_id, bucket_name=bucket_name)

    def file_change_stream(self, bucket: BucketPrimitive) -> GCSFileChangeStream:
        if not isinstance(bucket, GCSBucket):
            raise TypeError(f"the gcp stack streams a GCSBucket's changes, not {bucket!r}")
        return GCSFileChangeStream(
            gcs_bucket=bucket, lease_seconds=seconds_setting("PUBSUB_ACK_DEADLINE", 60.0)
        )

    def dataset(self, name: str) -> BigQueryDataset:
        dataset_name = _setting("BIGQUERY_DATASET") or name
        return BigQueryDataset(project_id=self.project_id, dataset_name=dataset_name)

    def table(self, dataset: Primitive, name: str) -> BigQueryTable:
        if not isinstance(dataset, BigQueryDataset):
            raise TypeError(f"the gcp stack's tables live in a BigQueryDataset, not {dataset!r}")
        return BigQueryTable(dataset, _setting("BIGQUERY_TABLE") or name)


def _setting(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None
