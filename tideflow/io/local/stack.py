"""The local stack: a folder bucket, its journaled change stream, and DuckDB.

Settings: ``LocalSettings`` (``tideflow.io.local.settings``: the journal's retention), read
once when the stack is made; everything else lives in the stack's state directory
(``TIDEFLOW_HOME``).
"""

from __future__ import annotations

from tideflow.io.duckdb import DuckDBDataset, DuckDBTable
from tideflow.io.local.bucket import LocalBucket
from tideflow.io.local.settings import LocalSettings
from tideflow.io.local.stream import LocalFileChangeStream
from tideflow.io.primitive import BucketPrimitive, Primitive
from tideflow.stacks import Stack


class LocalStack(Stack):
    name = "local"

    def __init__(self) -> None:
        self.settings = LocalSettings.from_environ()

    def bucket(self, name: str) -> LocalBucket:
        return LocalBucket(name)

    def file_change_stream(self, bucket: BucketPrimitive) -> LocalFileChangeStream:
        if not isinstance(bucket, LocalBucket):
            raise TypeError(f"the local stack streams a LocalBucket's changes, not {bucket!r}")
        return LocalFileChangeStream(bucket, settings=self.settings)

    def dataset(self, name: str) -> DuckDBDataset:
        return DuckDBDataset(f"{name}.duckdb")

    def table(self, dataset: Primitive, name: str) -> DuckDBTable:
        if not isinstance(dataset, DuckDBDataset):
            raise TypeError(f"the local stack's tables live in a DuckDBDataset, not {dataset!r}")
        return DuckDBTable(dataset, name)
