"""Google SDK errors become one-line tideflow errors that keep their cause."""

from __future__ import annotations

import pytest
import requests
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions

from tideflow.exceptions import ConfigError, PrimitiveError, SinkError, SourceError
from tideflow.io.gcp.errors import translated


def raised(exc: BaseException, **where: object) -> BaseException:
    settings = {
        "resource": "bucket gs://photos",
        "action": "create",
        "error": PrimitiveError,
        "permission": "storage.buckets.create",
    }
    settings.update(where)
    with pytest.raises(Exception) as caught, translated(**settings):  # type: ignore[arg-type]
        raise exc
    assert caught.value.__cause__ is exc
    assert "\n" not in str(caught.value)
    return caught.value


def test_a_403_names_the_resource_and_the_missing_permission() -> None:
    error = raised(
        api_exceptions.Forbidden(
            "someone@example.com does not have storage.buckets.create access\nto project 1"
        )
    )
    assert isinstance(error, PrimitiveError)
    assert str(error).startswith(
        "permission denied to create bucket gs://photos; the caller needs the IAM permission "
        "storage.buckets.create"
    )


def test_grpc_permission_denied_reads_the_same() -> None:
    error = raised(api_exceptions.PermissionDenied("denied"), error=SourceError)
    assert isinstance(error, SourceError)
    assert "needs the IAM permission storage.buckets.create" in str(error)


def test_quota_errors_say_so() -> None:
    for exc in (
        api_exceptions.TooManyRequests("rate limited"),
        api_exceptions.ResourceExhausted("quota"),
    ):
        error = raised(exc, error=SinkError)
        assert isinstance(error, SinkError)
        assert str(error).startswith("quota or rate limit exceeded to create bucket gs://photos")


def test_credential_problems_are_configuration_errors_with_the_fix() -> None:
    for exc in (
        auth_exceptions.DefaultCredentialsError("Could not automatically determine credentials"),
        api_exceptions.Unauthorized("bad token"),
    ):
        error = raised(exc)
        assert isinstance(error, ConfigError)
        assert "GCP_SERVICE_ACCOUNT_INFO" in str(error)
        assert "gcloud auth application-default login" in str(error)


def test_other_errors_name_what_failed() -> None:
    error = raised(api_exceptions.Conflict("already owned\nby someone"))
    assert str(error) == "cannot create bucket gs://photos: Conflict: already owned by someone"
    error = raised(requests.ConnectionError("connection refused"))
    assert str(error).startswith("cannot reach Google Cloud to create bucket gs://photos")
    error = raised(api_exceptions.RetryError("deadline", api_exceptions.ServiceUnavailable("503")))
    assert str(error) == "gave up retrying to create bucket gs://photos: 503"


def test_other_exceptions_pass_through() -> None:
    with pytest.raises(KeyError), translated(resource="r", action="a", error=PrimitiveError):
        raise KeyError("not a Google error")
