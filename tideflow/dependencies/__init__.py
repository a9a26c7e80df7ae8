"""Annotation-based dependency injection, scoped like BuildFlow's ``@dependency``.

Parameters annotated with a ``@dependency`` class, or with ``Annotated[T, provider]``,
are built and passed in by tideflow; a dependency that takes ``Request`` gets the HTTP
request of the endpoint call (``tideflow.requests.Request``).
"""

from tideflow.dependencies.builders import (
    BucketDependencyBuilder,
    StreamDependencyBuilder,
    TableReaderDependency,
)
from tideflow.dependencies.models import DependencySpec, Scope, dependency
from tideflow.dependencies.protocols import (
    Blob,
    BucketClient,
    BucketDependency,
    DeadLetters,
    StreamDependency,
    StreamSource,
    TableQuery,
)
from tideflow.dependencies.resolve import (
    Call,
    Resolver,
    check_scopes,
    close_process_scope,
    get_dependant,
    takes_request,
)

__all__ = [
    "Blob",
    "BucketClient",
    "BucketDependency",
    "BucketDependencyBuilder",
    "Call",
    "DeadLetters",
    "DependencySpec",
    "Resolver",
    "Scope",
    "StreamDependency",
    "StreamDependencyBuilder",
    "StreamSource",
    "TableQuery",
    "TableReaderDependency",
    "check_scopes",
    "close_process_scope",
    "dependency",
    "get_dependant",
    "takes_request",
]
