"""Dependencies that hand a primitive's run-time client to endpoints and consumers.

Each builder returns ``Annotated[Protocol, provider]``, FastAPI's ``Annotated[T,
Depends(...)]`` style, so it works as an annotation as BuildFlow writes it::

    BucketDep = BucketDependencyBuilder(bucket)

    def upload(image_file: UploadFile, bucket_dep: BucketDep) -> None:
        bucket_dep.bucket.blob(image_file.filename).upload_from_file(image_file.file)

A type checker cannot take a call's result as a type, so for one, wrap it: the
Protocol is what it checks, the builder in the metadata is what tideflow injects::

    BucketDep = Annotated[BucketDependency, BucketDependencyBuilder(bucket)]

``TableReaderDependency`` hands out the reader itself, as FastAPI's ``Annotated[T,
Depends(...)]`` does::

    Results = TableReaderDependency(table)

    def rows(results: Results) -> int:
        return results.count()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from tideflow.dependencies.models import Scope, dependency
from tideflow.dependencies.protocols import BucketDependency, StreamDependency
from tideflow.exceptions import ConfigError
from tideflow.io.primitive import BucketPrimitive, Primitive, SinkPrimitive, SourcePrimitive
from tideflow.io.strategies import TableReader


def primitive_dependency(
    primitive: Primitive, *, scope: Scope, **attributes: Callable[[], Any]
) -> type:
    """A ``@dependency`` class whose instances hold ``build()`` under each attribute name."""

    def initialise(self: Any) -> None:
        for attribute, build in attributes.items():
            setattr(self, attribute, build())

    def describe(self: Any) -> str:
        return f"<{name}>"

    first = next(iter(attributes))
    name = f"{first.capitalize()}Dependency[{primitive.primitive_id()}]"
    namespace = {"__init__": initialise, "__repr__": describe, "__qualname__": name}
    return dependency(scope=scope)(type(name, (), namespace))


def BucketDependencyBuilder(
    bucket: Primitive,
    gcp_quota_project_id: str | None = None,
    aws_region: str | None = None,
    *,
    scope: Scope = Scope.PROCESS,
) -> Any:
    """``Annotated[BucketDependency, provider]``: ``.bucket`` is the bucket's native client,
    ``.objects`` its portable ``ObjectStore`` (the same calls on every stack).

    For ``LocalBucket`` that is a ``LocalBucketClient``; for ``GCSBucket`` a
    google-cloud-storage ``Bucket``; both take ``.blob(name).upload_from_file(f)``.
    """
    if not isinstance(bucket, BucketPrimitive):
        raise ConfigError(f"{bucket!r} is not a bucket primitive")
    if gcp_quota_project_id is not None or aws_region is not None:
        # BuildFlow's parameters; tideflow's providers take them from their own settings.
        raise ConfigError(
            "BucketDependencyBuilder(gcp_quota_project_id=..., aws_region=...) is not "
            "supported: the gcp and aws providers read the project and region from their "
            "settings (GCP_PROJECT_ID, AWS_REGION)"
        )
    provider = primitive_dependency(
        bucket, scope=scope, bucket=bucket.client, objects=bucket.objects
    )
    return Annotated[BucketDependency, provider]


def TableReaderDependency(table: SinkPrimitive, *, scope: Scope = Scope.PROCESS) -> Any:
    """``Annotated[TableReader, provider]``: the table's ``TableReader``."""
    if not isinstance(table, SinkPrimitive):
        raise ConfigError(f"{table!r} is not a table primitive")

    def reader() -> TableReader:
        return table.reader()

    reader.__qualname__ = f"TableReader[{table.primitive_id()}]"
    return Annotated[TableReader, dependency(scope=scope)(reader)]


def StreamDependencyBuilder(stream: SourcePrimitive, *, scope: Scope = Scope.PROCESS) -> Any:
    """``Annotated[StreamDependency, provider]``: ``.source`` is the stream's source (for
    ``stats()``), ``.dead_letters`` its dead-letter queue."""
    if not isinstance(stream, SourcePrimitive):
        raise ConfigError(f"{stream!r} is not a stream primitive")
    provider = primitive_dependency(
        stream, scope=scope, source=stream.source, dead_letters=stream.dead_letter_queue
    )
    return Annotated[StreamDependency, provider]
