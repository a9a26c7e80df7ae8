"""The aws stack: S3, its notifications through SQS, and DuckDB or PostgreSQL.

Settings (environment; the CLI has loaded ``.env``):

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

import os

from tideflow.exceptions import ConfigError
from tideflow.extras import requires_extra
from tideflow.io.aws.clients import resolve_region
from tideflow.io.aws.s3 import S3Bucket
from tideflow.io.aws.stream import S3FileChangeStream
from tideflow.io.duckdb import DuckDBDataset, DuckDBTable
from tideflow.io.primitive import BucketPrimitive, Primitive, SinkPrimitive
from tideflow.stacks import Stack, seconds_setting

WAREHOUSES = ("duckdb", "postgres")


class AwsStack(Stack):
    name = "aws"

    def __init__(self) -> None:
        self.region = resolve_region(_setting("AWS_REGION"))
        self.warehouse = (_setting("WAREHOUSE") or "duckdb").lower()
        if self.warehouse not in WAREHOUSES:
            raise ConfigError(
                f"WAREHOUSE must be duckdb or postgres on the aws stack, got {self.warehouse!r}"
            )
        self.postgres_url = _setting("POSTGRES_URL")
        if self.warehouse == "postgres" and not self.postgres_url:
            raise ConfigError(
                "WAREHOUSE=postgres needs POSTGRES_URL=postgresql://user:password@host:5432/db "
                "(set it in .env)"
            )

    def bucket(self, name: str) -> S3Bucket:
        force = (_setting("S3_FORCE_DESTROY") or "false").lower()
        if force not in ("true", "false", "1", "0"):
            raise ConfigError(f"S3_FORCE_DESTROY must be true or false, got {force!r}")
        bucket = S3Bucket(_setting("S3_BUCKET_NAME") or name, region=self.region)
        return bucket.options(force_destroy=force in ("true", "1"))

    def file_change_stream(self, bucket: BucketPrimitive) -> S3FileChangeStream:
        if not isinstance(bucket, S3Bucket):
            raise TypeError(f"the aws stack streams an S3Bucket's changes, not {bucket!r}")
        return S3FileChangeStream(
            s3_bucket=bucket,
            queue_name=_setting("SQS_QUEUE_NAME"),
            lease_seconds=seconds_setting("SQS_VISIBILITY_TIMEOUT", 60.0),
        )

    def dataset(self, name: str) -> Primitive:
        if self.warehouse == "postgres":
            with requires_extra("postgres", "WAREHOUSE=postgres"):
                from tideflow.io.postgres import PostgresDatabase

            return PostgresDatabase(self.postgres_url)
        return DuckDBDataset(f"{name}.duckdb")

    def table(self, dataset: Primitive, name: str) -> SinkPrimitive:
        if self.warehouse == "postgres":
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


def _setting(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None
