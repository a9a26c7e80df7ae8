"""The files of a trained model: backbone and head exported as one ONNX graph, its labels
and sidecar, checked as the app will serve them, written into ``--out`` whole or not at all
(a staging folder beside it, then renamed into place)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from image_classification.model.preprocess import PreprocessSpec

from .backbone import Backbone, export_onnx, feature_extractor
from .data import DataError
from .head import TrainedHead

MODEL_FILE = "model.onnx"
LABELS_FILE = "model.txt"
SIDECAR_FILE = "model.json"
CARD_FILE = "card.json"
CARD_TEXT_FILE = "card.txt"


def check_out_dir(out: Path, *, force: bool) -> None:
    """``out`` may be written: it is absent or empty, or (with ``force``) a previous model's
    folder; ``--force`` never deletes a folder of something else."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; give a folder for the model.")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / CARD_FILE).is_file():
        raise DataError(
            f"--out {out} holds files but no model ({CARD_FILE}); --force replaces only a "
            "folder written by this command. Give another --out, or empty that folder."
        )
    if not force:
        raise DataError(f"--out {out} already holds a model; pass --force to replace it.")


@contextmanager
def staging_folder(out: Path) -> Iterator[Path]:
    """A new folder beside ``out`` to write the model into; removed if anything fails."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    staging.chmod(0o755)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def sidecar(
    name: str, preprocess: PreprocessSpec, *, multi_label: bool, thresholds: list[float] | None
) -> dict[str, Any]:
    """What the app needs to serve the model (see ``image_classification.model.sidecar``)."""
    fields: dict[str, Any] = {
        "name": name,
        "input_size": preprocess.crop,
        "resize": preprocess.resize,
        "mean": list(preprocess.mean),
        "std": list(preprocess.std),
        "layout": "NCHW",
        "activation": "none",
        "multi_label": multi_label,
    }
    if thresholds is not None:
        fields["thresholds"] = thresholds
    return fields


def export_model(backbone: Backbone, head: TrainedHead, path: Path) -> None:
    """Backbone + standardization + head + softmax/sigmoid as ONE ONNX graph."""
    import torch
    from torch import nn

    features, _ = feature_extractor(backbone)

    class Exported(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = features
            self.register_buffer("mean", torch.from_numpy(head.mean))
            self.register_buffer("scale", torch.from_numpy(head.scale))
            self.layers = nn.ModuleList()
            for weight, bias in head.layers:
                layer = nn.Linear(weight.shape[1], weight.shape[0])
                layer.weight.data = torch.from_numpy(weight)
                layer.bias.data = torch.from_numpy(bias)
                self.layers.append(layer)

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            h = (self.features(pixels) - self.mean) / self.scale
            for i, layer in enumerate(self.layers):
                h = layer(h)
                if i < len(self.layers) - 1:
                    h = torch.relu(h)
            return torch.sigmoid(h) if head.multi_label else torch.softmax(h, dim=1)

    model = Exported().eval()
    export_onnx(model, path, crop=backbone.preprocess.crop, output="probabilities")


def verify(
    model_path: Path,
    head: TrainedHead,
    sample: Sequence[tuple[bytes, np.ndarray]],
    *,
    threads: int | None,
) -> str:
    """Serve the exported file as the app will and check it agrees with the trained head on
    ``sample`` (a few held-out images and their embeddings); its model_id."""
    from image_classification.model import load_classifier
    from image_classification.model.preprocess import decode_image

    classifier = load_classifier(model_path, threads=threads)
    try:
        if sample:
            pixels = np.stack(
                [decode_image(data, classifier.preprocess).pixels for data, _ in sample]
            )
            served = classifier.probabilities(pixels)
            expected = head.scores(np.stack([vector for _, vector in sample]))
            worst = float(np.abs(served - expected).max())
            if worst > 2e-3:
                raise RuntimeError(
                    f"the exported model disagrees with the trained head by {worst:.4f}; "
                    "this is a bug, please report it"
                )
        return classifier.model_id
    finally:
        classifier.close()


def publish(staging: Path, out: Path) -> None:
    """Move the finished folder into place; an existing one (with --force) is replaced."""
    check_out_dir(out, force=True)  # again: it may have changed while training
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)
