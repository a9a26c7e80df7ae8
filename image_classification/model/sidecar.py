"""A custom model's sidecar: ``<model>.json`` next to the model file, saying how to feed it.

Every key is optional; what is missing is taken from the model's input shape or defaults::

    {
      "name": "flowers",            # the model's name in model_id (default: the file's stem,
                                    #   or its folder's name when the file is model.<ext>)
      "input_size": 224,            # the square crop the model takes
      "resize": 256,                # shorter side before the center crop (default 256/224 x)
      "mean": [0.485, 0.456, 0.406],  # per channel, on the 0..1 scale (torchvision style):
      "std": [0.229, 0.224, 0.225],   #   [0, 255] input: mean 0, std 1/255; [-1, 1]: 0.5, 0.5
      "layout": "NCHW",             # or "NHWC" (Keras, TFLite)
      "activation": "softmax",      # what turns outputs into confidences: "softmax",
                                    #   "sigmoid" (multi-label logits) or "none" (already done)
      "multi_label": false,         # true: independent labels, each with a threshold
      "thresholds": 0.5             # one number, or one per label (multi-label only)
    }

``python -m image_classification.train`` writes one for every model it exports.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec

ACTIVATIONS = ("softmax", "sigmoid", "none")
LAYOUTS = ("NCHW", "NHWC")
_KEYS = frozenset(
    {
        "name",
        "input_size",
        "resize",
        "mean",
        "std",
        "layout",
        "activation",
        "multi_label",
        "thresholds",
        "format",
    }
)


@dataclass(frozen=True, slots=True)
class Sidecar:
    """What a sidecar declares; ``None`` where it says nothing."""

    name: str | None = None
    input_size: int | None = None
    resize: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    layout: str | None = None
    activation: str | None = None
    multi_label: bool = False
    thresholds: float | tuple[float, ...] | None = None

    def preprocess(self, input_size: int | None) -> PreprocessSpec:
        """The preprocessing: the sidecar's values, else ``input_size`` (from the model's input
        shape) with torchvision's 256/224 resize ratio, else 224."""
        crop = self.input_size or input_size or 224
        resize = self.resize or round(crop * 256 / 224)
        return PreprocessSpec(
            resize=resize,
            crop=crop,
            mean=self.mean or IMAGENET_MEAN,
            std=self.std or IMAGENET_STD,
        )

    def label_thresholds(self, num_labels: int) -> tuple[float, ...] | None:
        """One threshold per label for a multi-label model (0.5 unless declared), else None."""
        if not self.multi_label:
            return None
        if self.thresholds is None:
            return (0.5,) * num_labels
        if isinstance(self.thresholds, float):
            return (self.thresholds,) * num_labels
        if len(self.thresholds) != num_labels:
            raise ConfigurationError(
                f"The sidecar has {len(self.thresholds)} thresholds for {num_labels} labels."
            )
        return self.thresholds


def sidecar_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def read_sidecar(model_path: Path) -> Sidecar:
    """The sidecar next to ``model_path`` (an empty one when there is no file)."""
    path = sidecar_path(model_path)
    if not path.is_file():
        return Sidecar()
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"Cannot read the sidecar {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigurationError(f"The sidecar {path} must hold a JSON object.")
    try:
        return parse_sidecar(raw)
    except ConfigurationError as exc:
        raise ConfigurationError(f"Sidecar {path}: {exc}") from None


def parse_sidecar(raw: dict[str, Any]) -> Sidecar:
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigurationError(
            f"unknown keys {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}"
        )
    activation = raw.get("activation")
    if activation is not None and activation not in ACTIVATIONS:
        raise ConfigurationError(f"activation must be one of {', '.join(ACTIVATIONS)}")
    layout = raw.get("layout")
    if layout is not None and layout not in LAYOUTS:
        raise ConfigurationError(f"layout must be one of {', '.join(LAYOUTS)}")
    multi_label = raw.get("multi_label", activation == "sigmoid")
    if not isinstance(multi_label, bool):
        raise ConfigurationError("multi_label must be true or false")
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigurationError("name must be a non-empty string")
    return Sidecar(
        name=name.strip() if name else None,
        input_size=_positive_int(raw, "input_size"),
        resize=_positive_int(raw, "resize"),
        mean=_triple(raw, "mean"),
        std=_triple(raw, "std"),
        layout=layout,
        activation=activation,
        multi_label=multi_label,
        thresholds=_thresholds(raw.get("thresholds")),
    )


def _positive_int(raw: dict[str, Any], key: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 4096:
        raise ConfigurationError(f"{key} must be a positive integer (pixels)")
    return value


def _triple(raw: dict[str, Any], key: str) -> tuple[float, float, float] | None:
    value = raw.get(key)
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(_finite_number(v) for v in value)
        or (key == "std" and min(value) <= 0)
    ):
        raise ConfigurationError(f"{key} must be a list of 3 numbers (per channel, 0..1 scale)")
    return (float(value[0]), float(value[1]), float(value[2]))


def _thresholds(value: Any) -> float | tuple[float, ...] | None:
    if value is None:
        return None
    if _finite_number(value) and 0 <= value <= 1:
        return float(value)
    if isinstance(value, list) and value and all(_finite_number(v) and 0 <= v <= 1 for v in value):
        return tuple(float(v) for v in value)
    raise ConfigurationError("thresholds must be a number in 0..1 or a list of them")


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
