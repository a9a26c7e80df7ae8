"""AWS SDK errors become tideflow errors, in one line, with the SDK error as the cause."""

from __future__ import annotations

import pytest
from botocore import exceptions as boto_exceptions

from tideflow.exceptions import ConfigError, PrimitiveError, SourceError
from tideflow.io.aws import S3Bucket
from tideflow.io.aws.errors import translate, translated
from tideflow.io.aws.source import SQSSource


def _client_error(code: str) -> boto_exceptions.ClientError:
    return boto_exceptions.ClientError(
        {"Error": {"Code": code, "Message": f"{code} happened\nsecond line"}}, "ReceiveMessage"
    )


def test_access_denied_names_the_iam_action() -> None:
    error = translate(
        _client_error("AccessDenied"),
        resource="SQS queue q",
        action="receive from",
        error=SourceError,
        permission="sqs:ReceiveMessage",
    )
    assert isinstance(error, SourceError)
    assert "access denied to receive from SQS queue q" in str(error)
    assert "sqs:ReceiveMessage" in str(error) and "\n" not in str(error)


def test_credentials_problems_are_config_errors() -> None:
    for exc in (boto_exceptions.NoCredentialsError(), _client_error("InvalidClientTokenId")):
        error = translate(exc, resource="r", action="read", error=SourceError)
        assert isinstance(error, ConfigError) and "aws configure" in str(error)


def test_translated_keeps_the_cause() -> None:
    cause = _client_error("Throttling")
    with (
        pytest.raises(PrimitiveError, match="throttled") as caught,
        translated(resource="bucket s3://b", action="create", error=PrimitiveError),
    ):
        raise cause
    assert caught.value.__cause__ is cause


def test_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setattr("tideflow.io.aws.clients._clients", {})
    source = SQSSource(
        queue_name="q", dead_letter_queue_name="q-dlq", region="us-east-1", reader=None
    )
    with pytest.raises(SourceError, match="cannot reach AWS"):
        source.pull(max_messages=1, timeout=1)
    with pytest.raises(PrimitiveError, match="cannot reach AWS"):
        S3Bucket("some-bucket").plan()
