"""The primitives of the chosen stack: a bucket, its file-change stream, a dataset, a table
of results and one of corrections.

``STACK`` names the stack (``tideflow --stack`` sets it); tideflow's provider registry
builds its primitives, and each provider reads its own settings (see template.env).
"""

from __future__ import annotations

import dataclasses

from image_classification.schemas import CorrectionRow, ImageClassificationRow
from image_classification.settings import Settings
from tideflow.io.primitive import BucketPrimitive, Primitive, SinkPrimitive, SourcePrimitive
from tideflow.stacks import get_stack


@dataclasses.dataclass(frozen=True)
class Primitives:
    bucket: BucketPrimitive
    file_change_stream: SourcePrimitive
    dataset: Primitive
    table: SinkPrimitive
    corrections: SinkPrimitive  # beside the results table: "<table>_corrections"


def build_primitives(settings: Settings) -> Primitives:
    stack = get_stack(settings.stack)
    bucket = stack.bucket("image-bucket")
    dataset = stack.dataset("image_classification")
    table = stack.table(dataset, "image_classification").options(schema=ImageClassificationRow)
    return Primitives(
        bucket=bucket,
        file_change_stream=stack.file_change_stream(bucket),
        dataset=dataset,
        table=table,
        corrections=table.sibling(f"{table.table_name}_corrections", schema=CorrectionRow),
    )
