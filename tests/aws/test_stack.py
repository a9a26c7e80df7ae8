"""The aws provider in the registry: its settings, its warehouses, its import boundaries."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tideflow.io.aws
from tideflow.exceptions import ConfigError
from tideflow.io.aws import S3Bucket, S3FileChangeEvent, S3FileChangeStream
from tideflow.io.duckdb import DuckDBTable
from tideflow.io.postgres import PostgresTable
from tideflow.stacks import get_stack
from tideflow.types import FileChangeEvent
from tideflow.types.aws import S3FileChangeEvent as TypesEvent

SETTINGS = ("AWS_REGION", "S3_BUCKET_NAME", "SQS_QUEUE_NAME", "WAREHOUSE", "POSTGRES_URL")


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*SETTINGS, "AWS_DEFAULT_REGION", "SQS_VISIBILITY_TIMEOUT", "S3_FORCE_DESTROY"):
        monkeypatch.delenv(name, raising=False)
    # No profile region either (it would be the default): whatever ~/.aws/config says.
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")


def test_defaults_duckdb_and_logical_names() -> None:
    stack = get_stack("aws")
    bucket = stack.bucket("image-bucket")
    assert isinstance(bucket, S3Bucket)
    assert bucket.bucket_name == "image-bucket" and bucket.region == "us-east-1"
    assert bucket.force_destroy is False
    stream = stack.file_change_stream(bucket)
    assert isinstance(stream, S3FileChangeStream)
    assert stream.queue_name == "image-bucket-changes" and stream.lease_seconds == 60
    assert stream.retry_delay_seconds == 10 and stream.max_attempts == 5
    table = stack.table(stack.dataset("image_classification"), "results")
    assert isinstance(table, DuckDBTable)
    assert table.failure_table.table_name == "results_failures"


def test_settings_name_the_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("S3_BUCKET_NAME", "my-images")
    monkeypatch.setenv("SQS_QUEUE_NAME", "my-queue")
    monkeypatch.setenv("SQS_VISIBILITY_TIMEOUT", "30")
    monkeypatch.setenv("S3_FORCE_DESTROY", "true")
    monkeypatch.setenv("WAREHOUSE", "postgres")
    monkeypatch.setenv("POSTGRES_URL", "postgresql://u:p@db.example:5432/images")
    stack = get_stack("aws")
    bucket = stack.bucket("image-bucket")
    assert (bucket.bucket_name, bucket.region) == ("my-images", "eu-west-1")
    assert bucket.force_destroy is True
    stream = stack.file_change_stream(bucket)
    assert (stream.queue_name, stream.dead_letter_queue_name) == ("my-queue", "my-queue-dlq")
    assert stream.lease_seconds == 30
    table = stack.table(stack.dataset("image_classification"), "results")
    assert isinstance(table, PostgresTable)
    assert isinstance(table.failure_table, PostgresTable)
    assert "p@" not in table.primitive_id()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"WAREHOUSE": "bigquery"}, "WAREHOUSE must be duckdb or postgres"),
        ({"WAREHOUSE": "postgres"}, "needs POSTGRES_URL"),
    ],
)
def test_bad_settings(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, str], message: str
) -> None:
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        get_stack("aws")


def test_bad_force_destroy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_FORCE_DESTROY", "maybe")
    with pytest.raises(ConfigError, match="S3_FORCE_DESTROY"):
        get_stack("aws").bucket("image-bucket")


def test_bad_visibility_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQS_VISIBILITY_TIMEOUT", "5")
    stack = get_stack("aws")
    with pytest.raises(ConfigError, match="lease_seconds"):
        stack.file_change_stream(stack.bucket("image-bucket"))


def test_public_names_and_event_type() -> None:
    assert tideflow.io.aws.__all__ == [
        "S3Bucket",
        "S3FileChangeEvent",
        "S3FileChangeStream",
        "S3ObjectStore",
        "SQSDeadLetterQueue",
        "SQSSource",
    ]
    assert S3FileChangeEvent is TypesEvent and issubclass(TypesEvent, FileChangeEvent)


def test_import_boundaries() -> None:
    code = (
        "import sys; import tideflow.types.aws;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'google', 'boto3', 'psycopg'}));"
        "from tideflow.stacks import get_stack; get_stack('aws');"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'google', 'boto3', 'psycopg'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "['boto3']"]
