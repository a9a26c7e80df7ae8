"""AWS SDK errors translated into tideflow errors, in one line, at the adapter boundary.

Every boto3 call runs inside ``translated(...)``, which names the resource and what was
being done, keeps the SDK error as ``__cause__`` (``raise ... from exc``) and raises the
tideflow error the caller chose (``PrimitiveError`` for plan/apply/destroy, ``SourceError``
and ``SinkError`` at run time). Access denied names the IAM action the call needs;
missing credentials become a ``ConfigError`` that says how to provide them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from botocore import exceptions as boto_exceptions

from tideflow.exceptions import ConfigError, TideflowError

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


def one_line(text: str, *, limit: int = 400) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ``ClientError`` (``NoSuchKey``, ``404`` ...), else ''."""
    if isinstance(exc, boto_exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def translate(
    exc: BaseException,
    *,
    resource: str,
    action: str,
    error: type[TideflowError],
    permission: str | None = None,
) -> TideflowError:
    """The tideflow error for ``exc``, raised while ``action`` on ``resource``."""
    code = error_code(exc)
    if isinstance(
        exc, boto_exceptions.NoCredentialsError | boto_exceptions.PartialCredentialsError
    ):
        return ConfigError(f"no AWS credentials to {action} {resource}; {_CREDENTIALS_HELP}")
    if isinstance(exc, boto_exceptions.NoRegionError):
        return ConfigError(f"no AWS region to {action} {resource}; set AWS_REGION")
    if code in _DENIED:
        if "kms:" in str(exc).lower():
            # A bucket encrypted with SSE-KMS: S3 answers AccessDenied for the key's use.
            permission = _KMS_HELP
        needed = f"; the caller needs the IAM action {permission}" if permission else ""
        return error(f"access denied to {action} {resource}{needed} ({one_line(str(exc))})")
    if code in _BAD_CREDENTIALS:
        return ConfigError(
            f"AWS rejected the credentials used to {action} {resource} ({code}); "
            f"{_CREDENTIALS_HELP}"
        )
    if code in _THROTTLED:
        return error(f"AWS throttled the request to {action} {resource} ({one_line(str(exc))})")
    if isinstance(
        exc,
        boto_exceptions.EndpointConnectionError
        | boto_exceptions.ConnectionClosedError
        | boto_exceptions.ReadTimeoutError
        | boto_exceptions.ConnectTimeoutError,
    ):
        return error(f"cannot reach AWS to {action} {resource}: {one_line(str(exc))}")
    return error(f"cannot {action} {resource}: {type(exc).__name__}: {one_line(str(exc))}")


@contextlib.contextmanager
def translated(
    *,
    resource: str,
    action: str,
    error: type[TideflowError],
    permission: str | None = None,
) -> Iterator[None]:
    """Run the block, turning boto3/botocore errors into ``error`` (kept as ``__cause__``)."""
    try:
        yield
    except boto_exceptions.BotoCoreError as exc:
        raise translate(
            exc, resource=resource, action=action, error=error, permission=permission
        ) from exc
    except boto_exceptions.ClientError as exc:
        raise translate(
            exc, resource=resource, action=action, error=error, permission=permission
        ) from exc
