"""boto3 clients for the aws stack, one per (service, region) and process.

Settings (read from the environment, as boto3 reads them): credentials the usual way
(``aws configure``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, an
instance role); ``AWS_REGION`` (else the profile's region that ``aws configure`` wrote,
else ``us-east-1``); ``AWS_ENDPOINT_URL`` (or
``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL_SQS``) to talk to an emulator such as moto.
boto3 clients are thread-safe and shared; resources (``s3.Bucket``) are not, so each
caller gets its own. Clients are never pickled: primitives drop them when they travel to
replica processes and make new ones on first use.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_REGION = "us-east-1"

_lock = threading.Lock()
_clients: dict[tuple[str, str, int], Any] = {}
# Long polls hold a connection for up to 20 s; leave room for concurrent workers.
_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"},
    max_pool_connections=32,
    read_timeout=40,
    connect_timeout=10,
)


def resolve_region(region: str | None = None) -> str:
    return (
        region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or boto3.session.Session().region_name  # AWS_PROFILE's or the default profile's
        or DEFAULT_REGION
    )


def client(service: str, region: str | None = None) -> Any:
    """The process's shared boto3 client for ``service`` in ``region``."""
    key = (service, resolve_region(region), os.getpid())
    with _lock:
        if key not in _clients:
            session = boto3.session.Session()
            _clients[key] = session.client(service, region_name=key[1], config=_CONFIG)
        return _clients[key]


def s3_resource(region: str | None = None) -> Any:
    """A new boto3 S3 resource (resources are not thread-safe: one per caller)."""
    session = boto3.session.Session()
    return session.resource("s3", region_name=resolve_region(region), config=_CONFIG)
