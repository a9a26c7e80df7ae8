"""Google SDK errors become one-line tideflow errors that keep their cause."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions

from tideflow.exceptions import (
    ConfigError,
    PrimitiveError,
    SinkError,
    SinkUnavailableError,
    SourceError,
)
from tideflow.io.gcp import GCSBucket
from tideflow.io.gcp.errors import translated
from tideflow.io.gcp.settings import GcpSettings


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
        api_exceptions.Forbidden("Quota exceeded", errors=[{"reason": "quotaExceeded"}]),
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


def test_a_disabled_api_is_not_reported_as_a_missing_permission() -> None:
    # 4j: Google answers 403 for both; the disabled API's says SERVICE_DISABLED.
    error = raised(
        api_exceptions.Forbidden(
            "Cloud Pub/Sub API has not been used in project 123 before or it is disabled. "
            "Enable it by visiting ... reason: SERVICE_DISABLED"
        )
    )
    assert isinstance(error, ConfigError)
    assert "API is disabled" in str(error)
    assert "gcloud services enable" in str(error)
    assert "IAM permission" not in str(error)


EXPIRED = api_exceptions.ServiceUnavailable(
    "Getting metadata from plugin failed with error: ('invalid_grant: Token has been "
    "expired or revoked.', {'error': 'invalid_grant'})"
)


def test_expired_credentials_on_grpc_are_a_config_error_not_an_outage() -> None:
    # 4j: gRPC reports a failed token refresh as 503 UNAVAILABLE.
    error = raised(EXPIRED, error=SourceError)
    assert isinstance(error, ConfigError)
    assert "expired or were revoked" in str(error)
    wrapped = raised(api_exceptions.RetryError("gave up", cause=EXPIRED), error=SourceError)
    assert isinstance(wrapped, ConfigError)


def test_pubsub_calls_do_not_retry_expired_credentials() -> None:
    from tideflow.io.gcp.google_transport import RETRY, _transient

    assert not _transient(EXPIRED)
    assert _transient(api_exceptions.ServiceUnavailable("connection reset"))
    assert RETRY.timeout is not None and RETRY.timeout <= 60


def test_the_project_comes_from_the_key_or_application_default_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # 4j: without GCP_PROJECT_ID the project was never taken from the credentials.
    for name in ("GCP_PROJECT_ID", "GOOGLE_CLOUD_PROJECT", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("CLOUDSDK_CORE_PROJECT", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
    monkeypatch.setenv("GCP_SERVICE_ACCOUNT_INFO", json.dumps({"project_id": "from-key"}))
    assert GcpSettings.from_environ().project() == "from-key"

    monkeypatch.delenv("GCP_SERVICE_ACCOUNT_INFO")
    adc = tmp_path / "application_default_credentials.json"
    adc.write_text(json.dumps({"type": "authorized_user", "quota_project_id": "from-adc"}))
    assert GcpSettings.from_environ().project() == "from-adc"

    adc.unlink()
    with pytest.raises(ConfigError, match="GCP_PROJECT_ID is required"):
        GcpSettings.from_environ().project()


def test_a_bucket_name_owned_by_another_project_says_so(
    gcs_emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4j: exists() on another project's bucket is a 403, which read "permission denied".
    bucket = GCSBucket(project_id="mine", bucket_name="photos")
    native = bucket.client()

    def forbidden() -> bool:
        raise api_exceptions.Forbidden("caller does not have storage.buckets.get access")

    monkeypatch.setattr(type(native), "exists", lambda self, **_: forbidden())
    with pytest.raises(PrimitiveError, match="taken by another project"):
        bucket.plan()


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (api_exceptions.ServiceUnavailable("down"), SinkUnavailableError),
        (api_exceptions.InternalServerError("oops"), SinkUnavailableError),
        (api_exceptions.TooManyRequests("slow down"), SinkUnavailableError),
        (requests.ConnectionError("refused"), SinkUnavailableError),
        (
            api_exceptions.RetryError("gave up", api_exceptions.BadGateway("502")),
            SinkUnavailableError,
        ),
        (api_exceptions.BadRequest("bad row"), SinkError),
        (api_exceptions.Forbidden("no"), SinkError),
        # BigQuery's quotas and rate limits are 403s too, told apart by their reason (G2).
        *(
            (
                api_exceptions.Forbidden("Exceeded", errors=[{"reason": reason}]),
                SinkUnavailableError,
            )
            for reason in ("rateLimitExceeded", "quotaExceeded", "jobRateLimitExceeded")
        ),
        (
            api_exceptions.RetryError(
                "gave up", api_exceptions.Forbidden("x", errors=[{"reason": "rateLimitExceeded"}])
            ),
            SinkUnavailableError,
        ),
        (api_exceptions.ServiceUnavailable("Getting metadata from plugin failed"), ConfigError),
    ],
)
def test_a_sinks_transient_failures_are_unavailability(
    raised: Exception, expected: type[Exception]
) -> None:
    with (
        pytest.raises(expected) as caught,
        translated(
            resource="table t",
            action="write to",
            error=SinkError,
            unavailable=SinkUnavailableError,
        ),
    ):
        raise raised
    assert type(caught.value) is expected
