"""Google Cloud errors translated into tideflow errors, in one line, at the adapter boundary.

Every call into a Google client library runs inside ``translated(...)``
(``tideflow.io.errors``), which names the resource and what was being done, keeps the SDK
error as ``__cause__`` and raises the tideflow error the caller chose (``PrimitiveError``
for plan/apply/destroy, ``SourceError`` and ``SinkError`` at run time; a sink's transient
failures, unreachable or 5xx or over a quota or rate limit, become
``SinkUnavailableError``, which the worker waits out). A permission error names the IAM
permission the call needs; a quota error says so (BigQuery answers quotas and rate limits
with 403 Forbidden, told apart by its reason); missing credentials become a
``ConfigError`` that says how to provide them.
"""

from __future__ import annotations

import requests
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions

from tideflow.exceptions import ConfigError, TideflowError
from tideflow.io.errors import Call, ErrorMap, one_line

_CREDENTIALS_HELP = (
    "set GCP_SERVICE_ACCOUNT_INFO to a service-account key (JSON) or run "
    "`gcloud auth application-default login`"
)


def describe(exc: BaseException) -> str:
    """The useful part of a Google error: its message without the HTTP request line."""
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        return one_line(exc.message or str(exc))
    return one_line(str(exc) or type(exc).__name__)


_DISABLED_MARKERS = ("SERVICE_DISABLED", "accessNotConfigured", "has not been used in project")
_AUTH_MARKERS = (
    "Getting metadata from plugin failed",
    "invalid_grant",
    "RefreshError",
    "Token has been expired or revoked",
)


def api_disabled(exc: BaseException) -> bool:
    """A 403 that means the service's API is off in the project, not a missing role."""
    if not isinstance(exc, api_exceptions.Forbidden | api_exceptions.PermissionDenied):
        return False
    text = str(exc) + " ".join(str(e) for e in getattr(exc, "errors", None) or [])
    return any(marker in text for marker in _DISABLED_MARKERS) or (
        "API" in text and "is disabled" in text
    )


def credentials_failed(exc: BaseException) -> bool:
    """gRPC reports a credential refresh that failed (expired or revoked) as 503
    UNAVAILABLE; retrying it cannot help."""
    return isinstance(exc, api_exceptions.ServiceUnavailable) and any(
        marker in str(exc) for marker in _AUTH_MARKERS
    )


# BigQuery answers an exceeded quota or rate limit with 403 Forbidden and one of these
# reasons ("Troubleshoot quota and limit errors"); they pass, unlike a missing permission.
_QUOTA_REASONS = frozenset({"rateLimitExceeded", "quotaExceeded", "jobRateLimitExceeded"})


def quota_exceeded(exc: BaseException) -> bool:
    """A quota or rate limit was hit: waiting helps, unlike with a missing permission."""
    if isinstance(exc, api_exceptions.RetryError):
        return exc.cause is not None and quota_exceeded(exc.cause)
    if isinstance(exc, api_exceptions.TooManyRequests | api_exceptions.ResourceExhausted):
        return True
    return isinstance(exc, api_exceptions.Forbidden) and any(
        isinstance(e, dict) and e.get("reason") in _QUOTA_REASONS for e in exc.errors or []
    )


_TRANSIENT = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.InternalServerError,
    api_exceptions.BadGateway,
    api_exceptions.GatewayTimeout,
    api_exceptions.DeadlineExceeded,
    requests.ConnectionError,
    requests.Timeout,
)


def transient(exc: BaseException) -> bool:
    """The service is unreachable, overloaded, over a quota or failing for now: the same
    call may succeed later (not a credential refresh that failed: that needs a person)."""
    if isinstance(exc, api_exceptions.RetryError):
        return exc.cause is not None and transient(exc.cause)
    if quota_exceeded(exc):
        return True
    return isinstance(exc, _TRANSIENT) and not credentials_failed(exc)


class GcpErrors(ErrorMap):
    """The Google client libraries' errors (``google.api_core``, ``google.auth``, requests)."""

    catches = (
        api_exceptions.GoogleAPIError,
        auth_exceptions.GoogleAuthError,
        requests.RequestException,
    )

    def transient(self, exc: BaseException) -> bool:
        return transient(exc)

    def translate(self, exc: BaseException, call: Call) -> TideflowError:
        action, resource = call.action, call.resource
        if isinstance(exc, auth_exceptions.GoogleAuthError):
            return ConfigError(
                f"no usable Google credentials to {action} {resource}: {describe(exc)}; "
                f"{_CREDENTIALS_HELP}"
            )
        if api_disabled(exc):
            return ConfigError(
                f"cannot {action} {resource}: the API is disabled in the project "
                f"({describe(exc)}); enable it (`gcloud services enable storage.googleapis.com "
                "pubsub.googleapis.com bigquery.googleapis.com`) and try again in a few minutes"
            )
        if credentials_failed(exc):
            return ConfigError(
                f"the Google credentials used to {action} {resource} expired or were revoked "
                f"({describe(exc)}); {_CREDENTIALS_HELP}"
            )
        if quota_exceeded(exc):
            return call.error(
                f"quota or rate limit exceeded to {action} {resource} ({describe(exc)}); "
                "it passes with time, or raise the quota in the Google Cloud console"
            )
        if isinstance(exc, api_exceptions.Forbidden | api_exceptions.PermissionDenied):
            permission = call.permission
            needed = f"; the caller needs the IAM permission {permission}" if permission else ""
            return call.error(f"permission denied to {action} {resource}{needed} ({describe(exc)})")
        if isinstance(exc, api_exceptions.Unauthorized | api_exceptions.Unauthenticated):
            return ConfigError(
                f"Google rejected the credentials used to {action} {resource}; {_CREDENTIALS_HELP}"
            )
        if isinstance(exc, requests.RequestException):
            return call.error(f"cannot reach Google Cloud to {action} {resource}: {describe(exc)}")
        if isinstance(exc, api_exceptions.RetryError):
            if exc.cause is not None and credentials_failed(exc.cause):
                return self.translate(exc.cause, call)
            return call.error(
                f"gave up retrying to {action} {resource}: {describe(exc.cause or exc)}"
            )
        return call.failed(f"{type(exc).__name__}: {describe(exc)}")


GCP_ERRORS = GcpErrors()
translated = GCP_ERRORS.translated
admin = GCP_ERRORS.admin
