"""The four primitives of the chosen stack: a bucket, its file-change stream, a dataset, a table.

``STACK`` names the stack (``tideflow --stack`` sets it); tideflow's provider registry
builds its primitives, and each provider reads its own settings (see template.env).
"""

from __future__ import annotations

from image_classification.schemas import ImageClassificationRow
from image_classification.settings import get_settings
from tideflow.stacks import get_stack

stack = get_stack(get_settings().stack)
bucket = stack.bucket("image-bucket")
file_change_stream = stack.file_change_stream(bucket)
dataset = stack.dataset("image_classification")
table = stack.table(dataset, "image_classification").options(schema=ImageClassificationRow)
