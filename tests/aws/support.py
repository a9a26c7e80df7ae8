"""Helpers of the aws tests: settings for a run on moto, waiting, queue and table counts."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import boto3
import psycopg

TABLE = "image_classification"


def aws_settings(**extra: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {
        "STACK": "aws",
        "S3_BUCKET_NAME": f"images-{suffix}",
        "SQS_QUEUE_NAME": f"images-{suffix}",
        "SQS_VISIBILITY_TIMEOUT": "10",
        "WAREHOUSE": "duckdb",
        "POSTGRES_URL": "",
        **extra,
    }


def wait_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    log: Callable[[], str] = str,
) -> None:
    """Poll ``predicate``; on timeout, fail with the end of ``log()`` as it is then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached after {timeout}s\n{log()[-3000:]}")


def queue_url(name: str) -> str:
    return str(boto3.client("sqs").get_queue_url(QueueName=name)["QueueUrl"])


def messages_in_queue(url: str) -> int:
    """Messages waiting or in flight in the queue."""
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def row_counts(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT COUNT(*), COUNT(DISTINCT image_id) FROM {TABLE}").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def failures_and_dead_letters(postgres_url: str, queue: str) -> tuple[int, int]:
    """Rows in the results' failure table, and messages in ``queue``'s dead-letter queue."""
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute(f"SELECT COUNT(*) FROM {TABLE}_failures").fetchone()
    assert row is not None
    return int(row[0]), messages_in_queue(queue_url(f"{queue}-dlq"))
