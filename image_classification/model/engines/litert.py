"""LiteRT (TensorFlow Lite): runs a custom ``.tflite`` model, as the Appwrite function did.

``ai-edge-litert``'s interpreter, one image per invoke unless the model takes a batch;
quantized (uint8/int8) inputs and outputs are converted with the model's own scale and zero
point. The interpreter is not thread-safe: calls are serialized.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from tideflow.extras import requires_extra

from ..errors import ConfigurationError, InvalidWeightsError


class LiteRTRunner:
    outputs_probabilities: bool | None = None

    def __init__(self, path: Path, *, threads: int | None) -> None:
        with requires_extra("litert", "a .tflite model", error=ConfigurationError):
            from ai_edge_litert.interpreter import Interpreter
        try:
            self._interpreter = Interpreter(model_path=str(path), num_threads=threads or 1)
            self._interpreter.allocate_tensors()
        except Exception as exc:
            raise InvalidWeightsError(f"LiteRT cannot load {path}: {exc}") from exc
        inputs = self._interpreter.get_input_details()
        if len(inputs) != 1:
            raise InvalidWeightsError(f"{path} has {len(inputs)} inputs; a classifier needs one.")
        self._input = inputs[0]
        self._output = self._interpreter.get_output_details()[0]
        self.input_shape: list[int | str | None] = [int(d) for d in self._input["shape"]]
        out_shape = [int(d) for d in self._output["shape"]]
        self.num_classes: int | None = out_shape[1] if len(out_shape) == 2 else None
        self._lock = threading.Lock()

    def run(self, pixels: np.ndarray) -> np.ndarray:
        rows = []
        with self._lock:
            for i in range(len(pixels)):
                self._interpreter.set_tensor(
                    self._input["index"], self._quantize(pixels[i : i + 1])
                )
                self._interpreter.invoke()
                rows.append(
                    self._dequantize(self._interpreter.get_tensor(self._output["index"]))[0]
                )
        return np.stack(rows) if rows else np.zeros((0, self.num_classes or 0), dtype=np.float32)

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if np.issubdtype(dtype, np.floating):
            return x.astype(dtype)
        scale, zero = self._input["quantization"]
        q = np.round(x / (scale or 1.0) + zero)
        info = np.iinfo(dtype)
        return np.clip(q, info.min, info.max).astype(dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if np.issubdtype(y.dtype, np.floating):
            return y.astype(np.float32)
        scale, zero = self._output["quantization"]
        return ((y.astype(np.float32) - zero) * (scale or 1.0)).astype(np.float32)

    def close(self) -> None:
        self._interpreter = None
