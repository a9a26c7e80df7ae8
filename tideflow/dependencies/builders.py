"""Dependency classes that hand a primitive's run-time client to endpoints and consumers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tideflow.dependencies.models import Scope, dependency
from tideflow.exceptions import ConfigError
from tideflow.io.primitive import Primitive, SinkPrimitive, SourcePrimitive


def primitive_dependency(
    primitive: Primitive, *, attribute: str, build: Callable[[], Any], scope: Scope
) -> type:
    """A ``@dependency`` class whose instances hold ``build()`` as ``attribute``."""

    def initialise(self: Any) -> None:
        setattr(self, attribute, build())

    name = f"{attribute.capitalize()}Dependency[{primitive.primitive_id()}]"
    return dependency(scope=scope)(type(name, (), {"__init__": initialise, "__qualname__": name}))


def BucketDependencyBuilder(bucket: Primitive, *, scope: Scope = Scope.PROCESS) -> type:
    """A dependency whose instances hold ``.bucket``, the bucket's client.

    For ``LocalBucket`` that is a ``LocalBucketClient``; for ``GCSBucket`` a
    google-cloud-storage ``Bucket``; both take ``.blob(name).upload_from_file(f)``.
    """
    client = getattr(bucket, "client", None)
    if not callable(client):
        raise ConfigError(f"{bucket!r} is not a bucket primitive (it has no client())")
    return primitive_dependency(bucket, attribute="bucket", build=client, scope=scope)


def TableDependencyBuilder(table: SinkPrimitive, *, scope: Scope = Scope.PROCESS) -> type:
    """A dependency whose instances hold ``.table``, a ``TableReader`` for queries."""
    return primitive_dependency(table, attribute="table", build=table.reader, scope=scope)


def StreamDependencyBuilder(stream: SourcePrimitive, *, scope: Scope = Scope.PROCESS) -> type:
    """A dependency whose instances hold ``.source``, for stats and dead letters."""
    return primitive_dependency(stream, attribute="source", build=stream.source, scope=scope)
