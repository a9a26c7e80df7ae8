"""The four primitives of the chosen stack: a bucket, its file-change stream, a dataset, a table.

``STACK`` picks them (``tideflow --stack`` sets it). Provider packages are imported only for
their own stack, so the local stack needs no cloud SDK installed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from image_classification.schemas import ImageClassificationRow
from image_classification.settings import Settings, get_settings
from tideflow.exceptions import ConfigError
from tideflow.io.duckdb import DuckDBDataset, DuckDBTable
from tideflow.io.local import LocalBucket, LocalFileChangeStream
from tideflow.io.primitive import Primitive, SinkPrimitive, SourcePrimitive

TABLE_NAME = "image_classification"


@dataclasses.dataclass(frozen=True)
class StackPrimitives:
    bucket: Primitive
    file_change_stream: SourcePrimitive
    dataset: Primitive
    table: SinkPrimitive


def _local(settings: Settings) -> StackPrimitives:
    bucket = LocalBucket("image-bucket")
    dataset = DuckDBDataset("image_classification.duckdb")
    return StackPrimitives(
        bucket=bucket,
        file_change_stream=LocalFileChangeStream(bucket),
        dataset=dataset,
        table=DuckDBTable(dataset, TABLE_NAME).options(schema=ImageClassificationRow),
    )


def _gcp(settings: Settings) -> StackPrimitives:
    from tideflow.io.gcp import BigQueryDataset, BigQueryTable, GCSBucket, GCSFileChangeStream

    project = settings.gcp_project_id or ""
    bucket = GCSBucket(project_id=project, bucket_name=settings.gcs_bucket)
    dataset = BigQueryDataset(project_id=project, dataset_name=settings.bigquery_dataset)
    return StackPrimitives(
        bucket=bucket,
        file_change_stream=GCSFileChangeStream(gcs_bucket=bucket),
        dataset=dataset,
        table=BigQueryTable(dataset, settings.bigquery_table).options(
            schema=ImageClassificationRow
        ),
    )


def _aws(settings: Settings) -> StackPrimitives:
    raise ConfigError(
        "the aws stack (S3, SQS, DuckDB/MotherDuck) is not built yet; "
        "use --stack local or --stack gcp"
    )


_STACKS: dict[str, Callable[[Settings], StackPrimitives]] = {
    "local": _local,
    "gcp": _gcp,
    "aws": _aws,
}

_chosen = _STACKS[get_settings().stack](get_settings())
bucket = _chosen.bucket
file_change_stream = _chosen.file_change_stream
dataset = _chosen.dataset
table = _chosen.table
