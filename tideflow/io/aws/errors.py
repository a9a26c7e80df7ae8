"""AWS SDK errors translated into tideflow errors, in one line, at the adapter boundary.

Every boto3 call runs inside ``translated(...)`` (``tideflow.io.errors``), which names the
resource and what was being done, keeps the SDK error as ``__cause__`` and raises the
tideflow error the caller chose (``PrimitiveError`` for plan/apply/destroy, ``SourceError``
and ``SinkError`` at run time). Access denied names the IAM action the call needs;
missing credentials become a ``ConfigError`` that says how to provide them.
"""

from __future__ import annotations

from botocore import exceptions as boto_exceptions

from tideflow.exceptions import ConfigError, TideflowError
from tideflow.io.errors import Call, ErrorMap, one_line

_CREDENTIALS_HELP = (
    "configure AWS credentials (`aws configure`, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
    "AWS_PROFILE or an instance role)"
)
_DENIED = {"AccessDenied", "AccessDeniedException", "AccessDenied.Exception", "Forbidden"}
_BAD_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
}
_KMS_HELP = (
    "kms:Decrypt (reads) and kms:GenerateDataKey (writes) on the bucket's KMS key (its "
    "default encryption is SSE-KMS)"
)
_THROTTLED = {"Throttling", "ThrottlingException", "SlowDown", "RequestThrottled"}
_NO_CREDENTIALS = (boto_exceptions.NoCredentialsError, boto_exceptions.PartialCredentialsError)
_UNREACHABLE = (
    boto_exceptions.EndpointConnectionError,
    boto_exceptions.ConnectionClosedError,
    boto_exceptions.ReadTimeoutError,
    boto_exceptions.ConnectTimeoutError,
)


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ``ClientError`` (``NoSuchKey``, ``404`` ...), else ''."""
    if isinstance(exc, boto_exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


class AwsErrors(ErrorMap):
    """boto3's errors: codes of ``ClientError``s, and botocore's own failures."""

    catches = (boto_exceptions.BotoCoreError, boto_exceptions.ClientError)

    def code(self, exc: BaseException) -> str:
        return error_code(exc)

    def transient(self, exc: BaseException) -> bool:
        return error_code(exc) in _THROTTLED or isinstance(exc, _UNREACHABLE)

    def translate(self, exc: BaseException, call: Call) -> TideflowError:
        code, action, resource = error_code(exc), call.action, call.resource
        if isinstance(exc, _NO_CREDENTIALS):
            return ConfigError(f"no AWS credentials to {action} {resource}; {_CREDENTIALS_HELP}")
        if isinstance(exc, boto_exceptions.NoRegionError):
            return ConfigError(f"no AWS region to {action} {resource}; set AWS_REGION")
        if code in _DENIED:
            # A bucket encrypted with SSE-KMS: S3 answers AccessDenied for the key's use.
            permission = _KMS_HELP if "kms:" in str(exc).lower() else call.permission
            needed = f"; the caller needs the IAM action {permission}" if permission else ""
            return call.error(
                f"access denied to {action} {resource}{needed} ({one_line(str(exc))})"
            )
        if code in _BAD_CREDENTIALS:
            return ConfigError(
                f"AWS rejected the credentials used to {action} {resource} ({code}); "
                f"{_CREDENTIALS_HELP}"
            )
        if code in _THROTTLED:
            return call.error(
                f"AWS throttled the request to {action} {resource} ({one_line(str(exc))})"
            )
        if isinstance(exc, _UNREACHABLE):
            return call.error(f"cannot reach AWS to {action} {resource}: {one_line(str(exc))}")
        return call.failed(f"{type(exc).__name__}: {one_line(str(exc))}")


AWS_ERRORS = AwsErrors()
translated = AWS_ERRORS.translated


def translate(
    exc: BaseException,
    *,
    resource: str,
    action: str,
    error: type[TideflowError],
    permission: str | None = None,
) -> TideflowError:
    """The tideflow error for ``exc``, raised while ``action`` on ``resource``."""
    return AWS_ERRORS.translate(exc, Call(resource, action, error, permission))
