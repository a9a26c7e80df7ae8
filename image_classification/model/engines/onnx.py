"""ONNX Runtime: the default engine, plus the export cache.

A PyTorch model is exported once per weights file and kept in the cache directory under a
name that contains the weights' sha256, so a replica that finds the file starts without
importing torch (seconds and hundreds of MB saved per replica), and new weights can never be
served by a stale export.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from tideflow.extras import requires_extra

from ..errors import ConfigurationError, InvalidWeightsError
from ..registry import ModelSpec

CACHE_ENV = "TIDEFLOW_MODEL_CACHE"
OPSET = 17
# Bump when the export itself changes (opset, graph surgery), to invalidate old cache files.
EXPORT_VERSION = "x1"


def default_cache_dir() -> Path:
    """``$TIDEFLOW_MODEL_CACHE``, else ``$XDG_CACHE_HOME/tideflow/models`` (~/.cache/...)."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tideflow" / "models"


def cached_onnx_path(spec: ModelSpec, weights_sha256: str, cache_dir: Path) -> Path:
    return cache_dir / f"{spec.name}-{weights_sha256[:16]}-opset{OPSET}-{EXPORT_VERSION}.onnx"


def ensure_onnx(spec: ModelSpec, weights: Path, weights_sha256: str, cache_dir: Path) -> Path:
    """The cached ONNX export of ``weights``, exporting it first if missing."""
    target = cached_onnx_path(spec, weights_sha256, cache_dir)
    if target.is_file():
        return target
    # Only now: exporting needs torch. Where it is not installed (a serving install, the
    # image), the export must have been made elsewhere and shipped in the cache folder.
    needed_by = (
        f"no ONNX export of {spec.name} in {cache_dir} ({target.name}): make it with "
        f"`python -m image_classification.model export {spec.name} --cache-dir DIR` where "
        f"torch is installed and point {CACHE_ENV} at DIR (`make image` does it for the "
        "image); exporting here"
    )
    with requires_extra("torch", needed_by, error=ConfigurationError):
        from . import torch as torch_engine

    model = torch_engine.build_model(spec, weights)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # Export next to the target and rename: replicas starting together may export at the
        # same time, and none may ever load a half-written file. The rename is atomic.
        handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=cache_dir)
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot write the ONNX export cache in {cache_dir} ({exc.strerror}). Point "
            f"{CACHE_ENV} at a writable folder, or run `python -m image_classification.model "
            "export` where it is writable and ship the cache folder."
        ) from exc
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        torch_engine.export_onnx(model, path=tmp, crop=spec.preprocess.crop, opset=OPSET)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


class OnnxRunner:
    """An ONNX Runtime CPU session with an explicit thread count."""

    def __init__(
        self, path: Path, *, threads: int | None, outputs_probabilities: bool | None
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # intra-op threads parallelize one inference; inter-op stays 1 because these graphs
        # are sequential. Several replicas on one machine should each get cores / replicas.
        options.intra_op_num_threads = threads if threads is not None else _available_cpus()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise InvalidWeightsError(
                f"ONNX Runtime cannot load {path}: {exc}. If it is a cached export, delete it: "
                "it is exported again at the next start."
            ) from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise InvalidWeightsError(
                f"{path} has {len(inputs)} inputs; a classifier needs exactly one image input."
            )
        self.input_name: str = inputs[0].name
        self.input_shape: list[int | str | None] = list(inputs[0].shape)
        output_shape = self._session.get_outputs()[0].shape
        # The number of classes when the graph states it (N x classes), else None.
        self.num_classes: int | None = (
            output_shape[1] if len(output_shape) == 2 and isinstance(output_shape[1], int) else None
        )
        self.outputs_probabilities = outputs_probabilities

    def run(self, pixels: np.ndarray) -> np.ndarray:
        (scores,) = self._session.run(None, {self.input_name: pixels})[:1]
        return scores

    def close(self) -> None:
        self._session = None


def _available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
