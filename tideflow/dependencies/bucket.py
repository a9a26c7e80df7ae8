"""``BucketDependencyBuilder``, where the BuildFlow tutorial imports it from."""

from tideflow.dependencies.builders import BucketDependencyBuilder

__all__ = ["BucketDependencyBuilder"]
