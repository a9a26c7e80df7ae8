"""PyTorch: builds the models from their weights files; the reference engine and the exporter.

Imported only when the torch engine is chosen or an ONNX file has to be exported, because
importing torch costs seconds and hundreds of MB per replica.
"""

from __future__ import annotations

import re
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import InvalidWeightsError
from ..registry import ModelSpec

if TYPE_CHECKING:
    from torch import nn

# torch.set_num_threads is process-wide; the lock keeps concurrent loads from interleaving.
_THREADS_LOCK = threading.Lock()

# Old torchvision DenseNet checkpoints (densenet121-a639ec97.pth) name layers "norm.1" where
# the current modules say "norm1"; torchvision and ImageAI rename them the same way.
_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
    r"((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def build_model(spec: ModelSpec, weights: Path) -> nn.Module:
    """The model for ``spec`` with ``weights`` loaded, in eval mode."""
    state_dict = _load_state_dict(weights, spec)
    model = _architecture(spec)
    if spec.arch == "densenet121":
        state_dict = {_DENSENET_KEY.sub(r"\1\2", key): value for key, value in state_dict.items()}
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise InvalidWeightsError(
            f"{weights} does not hold {spec.name} weights (the layers do not match): "
            f"{str(exc).splitlines()[0]} Is it the file for another model?"
        ) from exc
    if spec.arch == "inception_v3":
        # The auxiliary classifier only matters in training; dropping it keeps the export lean.
        model.aux_logits = False  # type: ignore[assignment]
        model.AuxLogits = None  # type: ignore[assignment]
    model.eval()
    return model


def _architecture(spec: ModelSpec) -> nn.Module:
    if spec.family == "efficientnet_lite":
        from efficientnet_lite_pytorch import EfficientNet

        return EfficientNet.from_name(spec.arch)
    import torchvision.models as tv_models

    if spec.arch == "inception_v3":
        # As torchvision's own weights loader builds it: the checkpoint is Google's, trained on
        # inputs in [-1, 1]; transform_input converts ImageNet-normalized input to that.
        return tv_models.Inception3(aux_logits=True, transform_input=True, init_weights=False)
    return getattr(tv_models, spec.arch)(weights=None)


def _load_state_dict(weights: Path, spec: ModelSpec) -> dict[str, torch.Tensor]:
    try:
        # weights_only: a .pth file is a pickle; this refuses anything but tensors and
        # containers, so a malicious "weights" file cannot run code.
        loaded = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InvalidWeightsError(
            f"Cannot read {weights} as a PyTorch weights file for {spec.name}: {exc}"
        ) from exc
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]  # a training checkpoint wrapping the weights
    if not isinstance(loaded, dict):
        raise InvalidWeightsError(
            f"{weights} holds a {type(loaded).__name__}, not a state_dict of {spec.name} weights."
        )
    return loaded


class TorchRunner:
    """Runs a torch model on numpy batches in inference mode."""

    outputs_probabilities = False

    def __init__(self, model: nn.Module, *, threads: int | None) -> None:
        self._model = model
        if threads is not None:
            with _THREADS_LOCK:
                torch.set_num_threads(threads)

    def run(self, pixels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self._model(torch.from_numpy(pixels)).numpy()

    def close(self) -> None:
        self._model = None  # type: ignore[assignment]


def export_onnx(model: nn.Module, *, path: Path, crop: int, opset: int) -> None:
    """Export with a dynamic batch dimension (input "pixels", output "logits")."""
    example = torch.zeros(1, 3, crop, crop)
    with warnings.catch_warnings():
        # The TorchScript exporter warns about deprecation and constant-folding details that
        # do not affect the result (checked by the engine-agreement tests).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            # The TorchScript exporter: the dynamo one needs onnxscript, and these are plain
            # convolutional graphs it handles well.
            dynamo=False,
        )
