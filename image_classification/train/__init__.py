"""Train your own classes on the CPU: ``python -m image_classification.train DATA --out DIR``.

A frozen pretrained backbone (EfficientNet-Lite0 by default) embeds every image once (cached
by the file's sha256); a small head is trained on the embeddings; backbone and head are
exported together as one ONNX file that the app serves with ``MODEL=DIR/model.onnx``.
See ``__main__`` for the command line and README "Your own classes".
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .data import DataError, Dataset, build_dataset, load_dataset

if TYPE_CHECKING:
    from .head import HeadOptions
    from .trainer import TrainOptions, train

# Training runs on torch (the 'torch' extra): these are imported on first use (PEP 562), so
# that `python -m image_classification.train` can say what to install when torch is missing.
_ON_TORCH = {"HeadOptions": ".head", "TrainOptions": ".trainer", "train": ".trainer"}

__all__ = [
    "DataError",
    "Dataset",
    "HeadOptions",
    "TrainOptions",
    "build_dataset",
    "load_dataset",
    "train",
]


def __getattr__(name: str) -> Any:
    module = _ON_TORCH.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
