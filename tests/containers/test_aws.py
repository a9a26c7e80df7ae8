"""The serving image on the aws stack: a service and two consumer containers against moto's
server (S3 -> SQS) and PostgreSQL, on the host's network (tests.containers.scenario)."""

from __future__ import annotations

import boto3
import pytest

from tests.aws.conftest import AWS_ENV
from tests.aws.support import aws_settings, messages_in_queue, queue_url, row_counts
from tests.containers.podman import Podman
from tests.containers.scenario import CloudStack, run_machines

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def test_service_and_consumer_containers_on_aws(
    podman: Podman, serving_image: str, moto_server: str, postgres_url: str
) -> None:
    settings = aws_settings(WAREHOUSE="postgres", POSTGRES_URL=postgres_url, MODEL_THREADS="1")
    env = {**AWS_ENV, "AWS_ENDPOINT_URL": moto_server, **settings}
    s3 = boto3.client("s3")

    def in_flight() -> int:
        attributes = boto3.client("sqs").get_queue_attributes(
            QueueUrl=queue_url(settings["SQS_QUEUE_NAME"]),
            AttributeNames=["ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessagesNotVisible"])

    stack = CloudStack(
        env=env,
        put_object=lambda key, data: s3.put_object(
            Bucket=settings["S3_BUCKET_NAME"], Key=key, Body=data
        ),
        distinct_rows=lambda: row_counts(postgres_url)[1],
        in_flight=in_flight,
    )
    run_machines(podman, serving_image, stack)
    assert row_counts(postgres_url)[0] == row_counts(postgres_url)[1]
    assert messages_in_queue(queue_url(f"{settings['SQS_QUEUE_NAME']}-dlq")) == 0
