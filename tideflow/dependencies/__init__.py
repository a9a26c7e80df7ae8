"""Annotation-based dependency injection, scoped like BuildFlow's ``@dependency``."""

from tideflow.dependencies.builders import (
    BucketDependencyBuilder,
    StreamDependencyBuilder,
    TableDependencyBuilder,
)
from tideflow.dependencies.models import DependencySpec, Scope, dependency
from tideflow.dependencies.resolve import Resolver, check_scopes, get_dependant

__all__ = [
    "BucketDependencyBuilder",
    "DependencySpec",
    "Resolver",
    "Scope",
    "StreamDependencyBuilder",
    "TableDependencyBuilder",
    "check_scopes",
    "dependency",
    "get_dependant",
]
