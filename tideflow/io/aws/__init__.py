"""The aws stack: S3, S3 event notifications through SQS (with a dead-letter queue).

Importing this package loads boto3; ``tideflow`` itself never does, so the other stacks
need none installed. Settings come from the environment, read once into an
``AwsSettings`` (``tideflow.io.aws.settings``).
The warehouse is DuckDB (``tideflow.io.duckdb``, one consumer machine) or PostgreSQL
(``tideflow.io.postgres``, consumers on many machines); ``AwsStack`` chooses by
``WAREHOUSE``.
"""

from tideflow.io.aws.s3 import S3Bucket, S3ObjectStore
from tideflow.io.aws.source import SQSDeadLetterQueue, SQSSource
from tideflow.io.aws.stream import S3FileChangeStream
from tideflow.types.aws import S3FileChangeEvent

__all__ = [
    "S3Bucket",
    "S3FileChangeEvent",
    "S3FileChangeStream",
    "S3ObjectStore",
    "SQSDeadLetterQueue",
    "SQSSource",
]
