"""boto3 clients for the aws stack, one per (service, region) and process.

boto3 reads its own settings from the environment: credentials the usual way (``aws
configure``, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, an instance
role) and ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL_SQS``) to
talk to an emulator such as moto. The region is the caller's (``AwsSettings.region``).
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

_lock = threading.Lock()
_clients: dict[tuple[str, str, int], Any] = {}
# Long polls hold a connection for up to 20 s; leave room for concurrent workers.
_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"},
    max_pool_connections=32,
    read_timeout=40,
    connect_timeout=10,
)


def client(service: str, region: str) -> Any:
    """The process's shared boto3 client for ``service`` in ``region``."""
    key = (service, region, os.getpid())
    with _lock:
        if key not in _clients:
            session = boto3.session.Session()
            _clients[key] = session.client(service, region_name=key[1], config=_CONFIG)
        return _clients[key]


def s3_resource(region: str) -> Any:
    """A new boto3 S3 resource (resources are not thread-safe: one per caller)."""
    session = boto3.session.Session()
    return session.resource("s3", region_name=region, config=_CONFIG)
