"""The aws stack: S3, its notifications through SQS, and DuckDB or PostgreSQL.

Settings: ``AwsSettings`` (``tideflow.io.aws.settings``), read once when the stack is
made:

- ``AWS_REGION`` (default ``us-east-1``) for the bucket and queues; credentials and
  ``AWS_ENDPOINT_URL`` as boto3 reads them (see ``tideflow.io.aws.clients``);
- ``S3_BUCKET_NAME`` (default: the bucket name the app passes; bucket names are global
  across AWS accounts, so set your own), ``S3_FORCE_DESTROY`` (default false: ``destroy``
  removes only an empty bucket; true deletes every object version first) and
  ``SQS_QUEUE_NAME`` (default ``<bucket>-changes``; its dead-letter queue is ``<queue>-dlq``);
- ``WAREHOUSE``: ``duckdb`` (default: a file in the consumer machine's state directory,
  for one consumer machine, as in BuildFlow's aws tutorial) or ``postgres`` with
  ``POSTGRES_URL`` (an existing database, e.g. RDS or Aurora, for consumers on several
  machines);
- ``SQS_VISIBILITY_TIMEOUT`` (default 60, 10 to 43200): seconds a received event stays
  hidden from other consumers; a replica at work extends it, and after a crash the event
  comes back when it runs out.
"""

from __future__ import annotations

from tideflow.extras import requires_extra
from tideflow.io.aws.s3 import S3Bucket
from tideflow.io.aws.settings import AwsSettings
from tideflow.io.aws.stream import S3FileChangeStream
from tideflow.io.duckdb import DuckDBDataset, DuckDBTable
from tideflow.io.primitive import BucketPrimitive, Primitive, SinkPrimitive
from tideflow.stacks import Stack


class AwsStack(Stack):
    name = "aws"

    def __init__(self) -> None:
        self.settings = AwsSettings.from_environ()

    def bucket(self, name: str) -> S3Bucket:
        bucket = S3Bucket(self.settings.bucket_name or name, region=self.settings.region)
        return bucket.options(force_destroy=self.settings.force_destroy)

    def file_change_stream(self, bucket: BucketPrimitive) -> S3FileChangeStream:
        if not isinstance(bucket, S3Bucket):
            raise TypeError(f"the aws stack streams an S3Bucket's changes, not {bucket!r}")
        return S3FileChangeStream(
            s3_bucket=bucket,
            queue_name=self.settings.queue_name,
            lease_seconds=self.settings.visibility_timeout_seconds,
        )

    def dataset(self, name: str) -> Primitive:
        if self.settings.warehouse == "postgres":
            with requires_extra("postgres", "WAREHOUSE=postgres"):
                from tideflow.io.postgres import PostgresDatabase

            return PostgresDatabase(self.settings.postgres_url)
        return DuckDBDataset(f"{name}.duckdb")

    def table(self, dataset: Primitive, name: str) -> SinkPrimitive:
        if self.settings.warehouse == "postgres":
            with requires_extra("postgres", "WAREHOUSE=postgres"):
                from tideflow.io.postgres import PostgresDatabase, PostgresTable

            if not isinstance(dataset, PostgresDatabase):
                raise TypeError(
                    f"WAREHOUSE=postgres tables live in a PostgresDatabase: {dataset!r}"
                )
            return PostgresTable(dataset, name)
        if not isinstance(dataset, DuckDBDataset):
            raise TypeError(f"WAREHOUSE=duckdb tables live in a DuckDBDataset, not {dataset!r}")
        return DuckDBTable(dataset, name)
