"""Train your own classes on the CPU: ``python -m image_classification.train DATA --out DIR``.

A frozen pretrained backbone (EfficientNet-Lite0 by default) embeds every image once (cached
by the file's sha256); a small head is trained on the embeddings; backbone and head are
exported together as one ONNX file that the app serves with ``MODEL=DIR/model.onnx``.
See ``__main__`` for the command line and README "Your own classes".
"""

from .data import DataError, Dataset, build_dataset, load_dataset
from .head import HeadOptions
from .trainer import TrainOptions, train

__all__ = [
    "DataError",
    "Dataset",
    "HeadOptions",
    "TrainOptions",
    "build_dataset",
    "load_dataset",
    "train",
]
