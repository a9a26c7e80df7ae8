"""Keras 3 on the PyTorch backend: runs a custom ``.keras`` or ``.h5`` model, as the FastAPI
service and the Flask page saved theirs.

Loaded with ``safe_mode=True`` (a model file cannot run code through Lambda layers) and
``compile=False`` (inference only). ``KERAS_BACKEND`` defaults to ``torch``, the backend
installed here; the model runs on the CPU.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from tideflow.extras import requires_extra

from ..errors import ConfigurationError, InvalidWeightsError


class KerasRunner:
    outputs_probabilities: bool | None = None

    def __init__(self, path: Path, *, threads: int | None) -> None:
        os.environ.setdefault("KERAS_BACKEND", "torch")
        with requires_extra("keras", "a .keras/.h5 model", error=ConfigurationError):
            import keras

            if threads is not None and keras.backend.backend() == "torch":
                import torch

                torch.set_num_threads(threads)
        try:
            self._model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
        except Exception as exc:
            raise InvalidWeightsError(f"Keras cannot load {path}: {exc}") from exc
        self._ops = keras.ops
        shape = self._model.input_shape
        if isinstance(shape, list):
            raise InvalidWeightsError(f"{path} has {len(shape)} inputs; a classifier needs one.")
        self.input_shape: list[int | str | None] = list(shape)
        out = self._model.output_shape
        self.num_classes: int | None = out[1] if len(out) == 2 and isinstance(out[1], int) else None
        self._lock = threading.Lock()

    def run(self, pixels: np.ndarray) -> np.ndarray:
        with self._lock:
            out = self._model(pixels, training=False)
        return np.asarray(self._ops.convert_to_numpy(out), dtype=np.float32)

    def close(self) -> None:
        self._model = None
