"""The aws stack's settings, read from the environment once, by ``AwsStack``.

``AwsSettings.from_environ()`` reads every variable the aws stack knows (the CLI has
loaded the project's ``.env``); the stack builds its primitives from the one object.

- ``AWS_REGION`` (else ``AWS_DEFAULT_REGION``, else the profile's region that ``aws
  configure`` wrote, else ``us-east-1``) for the bucket and queues;
- ``S3_BUCKET_NAME`` (default: the bucket name the app passes), ``S3_FORCE_DESTROY``
  (default false), ``SQS_QUEUE_NAME`` (default ``<bucket>-changes``) and
  ``SQS_VISIBILITY_TIMEOUT`` (default 60 seconds);
- ``WAREHOUSE``: ``duckdb`` (default) or ``postgres`` with ``POSTGRES_URL``.

Credentials and ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL_SQS``)
are boto3's own: it reads them itself (see ``tideflow.io.aws.clients``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import boto3

from tideflow.exceptions import ConfigError
from tideflow.io.settings import env_flag, env_seconds, env_text

DEFAULT_REGION = "us-east-1"
WAREHOUSES = ("duckdb", "postgres")


def default_region(environ: Mapping[str, str] = os.environ) -> str:
    """The region when none is given: see the module's docstring."""
    return (
        env_text(environ, "AWS_REGION")
        or env_text(environ, "AWS_DEFAULT_REGION")
        or boto3.session.Session().region_name  # AWS_PROFILE's or the default profile's
        or DEFAULT_REGION
    )


@dataclasses.dataclass(frozen=True)
class AwsSettings:
    region: str = DEFAULT_REGION
    bucket_name: str | None = None
    force_destroy: bool = False
    queue_name: str | None = None
    visibility_timeout_seconds: float = 60.0
    warehouse: str = "duckdb"
    postgres_url: str | None = dataclasses.field(default=None, repr=False)  # has a password

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> AwsSettings:
        warehouse = (env_text(environ, "WAREHOUSE") or "duckdb").lower()
        if warehouse not in WAREHOUSES:
            raise ConfigError(
                f"WAREHOUSE must be duckdb or postgres on the aws stack, got {warehouse!r}"
            )
        postgres_url = env_text(environ, "POSTGRES_URL")
        if warehouse == "postgres" and not postgres_url:
            raise ConfigError(
                "WAREHOUSE=postgres needs POSTGRES_URL=postgresql://user:password@host:5432/db "
                "(set it in .env)"
            )
        return cls(
            region=default_region(environ),
            bucket_name=env_text(environ, "S3_BUCKET_NAME"),
            force_destroy=env_flag(environ, "S3_FORCE_DESTROY"),
            queue_name=env_text(environ, "SQS_QUEUE_NAME"),
            visibility_timeout_seconds=env_seconds(environ, "SQS_VISIBILITY_TIMEOUT", 60.0),
            warehouse=warehouse,
            postgres_url=postgres_url,
        )
