"""``BucketDependencyBuilder``, where the BuildFlow tutorial imports it from."""

from tideflow.dependencies.builders import BucketDependencyBuilder
from tideflow.dependencies.protocols import Blob, BucketClient, BucketDependency

__all__ = ["Blob", "BucketClient", "BucketDependency", "BucketDependencyBuilder"]
