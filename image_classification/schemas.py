"""The warehouse tables: one row per classified image (stored object key + generation),
and the corrections people make to them."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any, ClassVar


@dataclasses.dataclass(frozen=True)
class Classification:
    """One of an image's top-k labels; ``confidence`` is the softmax probability (0..1)."""

    label: str
    confidence: float


@dataclasses.dataclass(frozen=True)
class ImageClassificationRow:
    """A classified image.

    ``image_id`` identifies the stored object version (see ``image_ids``); ``image_name`` is
    the uploader's original file name, display text only; ``upload`` is when the object was
    stored (UTC); ``latency_ms`` is the consumer's time to read, decode and classify it;
    ``classified_at`` is when the consumer made the row (None in rows from before it existed).
    """

    image_id: str
    image_name: str
    upload: datetime.datetime
    classifications: list[Classification]
    model_id: str
    width: int
    height: int
    size_bytes: int
    content_type: str
    latency_ms: float
    classified_at: datetime.datetime | None = None

    # `tideflow query/export --label L` (exact, any case) and `--q L` (part of it) search:
    tideflow_label: ClassVar[str] = "classifications.label"

    @classmethod
    def tideflow_summary(cls, record: Mapping[str, Any]) -> dict[str, Any]:
        """The line `tideflow query --results` prints for an image: its name, top label,
        model (without its version) and upload time."""
        top = (record.get("classifications") or [None])[0]
        return {
            "image_name": record.get("image_name"),
            "top label": f"{top['label']} {top['confidence']:.1%}" if top else "",
            "status": "done",  # a row is an image classified; failures have their log
            "model": model_name(record.get("model_id") or ""),
            "upload UTC": record.get("upload"),
        }

    def tideflow_row_key(self) -> str:
        """Rows are keyed by (object, version, model_id): a replay to the same model adds
        nothing, a replay to a new model adds one row beside the old one."""
        return self.model_id


def model_name(model_id: str) -> str:
    """``efficientnet_lite0@a1b2c3d4e5f6/onnxruntime/v1`` -> ``efficientnet_lite0``."""
    return model_id.split("/", 1)[0].split("@", 1)[0]


@dataclasses.dataclass(frozen=True)
class CorrectionRow:
    """What a person said an image shows (``labels``), and what the model had said.

    Rows of the corrections table (``processors/corrections.py``): append-only, the newest
    correction of an image wins.
    """

    image_id: str
    image_name: str
    labels: list[str]
    model_id: str
    model_labels: list[str]
    corrected_at: datetime.datetime
    user: str
