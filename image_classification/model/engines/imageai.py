"""ImageAI's ``ImageClassification``, used exactly as the tutorial does.

It is here for compatibility with the tutorial and as an oracle for our preprocessing and
label mapping; it is slow (eager PyTorch plus per-image torchvision transforms).

Compatibility shims for ImageAI 3.0.3 on current torch/torchvision, all local to this module
(site-packages is never modified):

* ``imageai.Classification`` builds all four torchvision models at import time with the
  removed-in-spirit ``pretrained=False`` argument; that still works but warns, and InceptionV3's
  default initialisation is slow. The import is wrapped to silence those warnings.
* It keeps ONE model object per type in a module-level dict, shared by every
  ``ImageClassification`` instance: a second instance loading other weights of the same type
  would overwrite the first one's. Before ``loadModel`` we give each instance a fresh model.
* ``torch.load`` now defaults to ``weights_only=True``; ImageAI calls it without arguments.
  State-dict files (torchvision's and ours) load fine under that default, so no shim is
  needed; a file that needs full unpickling fails, which is the safe outcome.
* ``loadModel`` prints a traceback and returns normally when loading fails; we check that the
  model really loaded and raise ``InvalidWeightsError`` instead.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..classifier import Classifier
from ..datatypes import Classification, ClassifiedImage
from ..errors import ConfigurationError, InvalidImageError, InvalidWeightsError
from ..labels import imagenet_labels
from ..preprocess import DEFAULT_PREPROCESS, open_image
from ..registry import ModelSpec

_LOAD_LOCK = threading.Lock()
# ImageAI's internal model-type keys, by our model name.
_IMAGEAI_TYPES = {
    "mobilenet_v2": "mobilenetv2",
    "resnet50": "resnet50",
    "inception_v3": "inceptionv3",
    "densenet121": "densenet121",
}


def _import_image_classification() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module("imageai.Classification")


def new_image_classification(spec: ModelSpec, weights: Path, *, threads: int | None = None) -> Any:
    """A loaded ``imageai.Classification.ImageClassification``, built as in the tutorial:
    ``setModelTypeAs...()``, ``setModelPath(...)``, ``loadModel()``."""
    if spec.imageai_setter is None or spec.name not in _IMAGEAI_TYPES:
        raise ConfigurationError(
            f"The imageai engine only runs ImageAI's model types "
            f"({', '.join(_IMAGEAI_TYPES)}), not {spec.name!r}. "
            "Use engine='onnxruntime' (default) or engine='torch'."
        )
    import torch
    import torchvision.models as tv_models

    module = _import_image_classification()
    if threads is not None:
        torch.set_num_threads(threads)
    with _LOAD_LOCK:
        # Shim: a private model object for this instance (see the module docstring).
        fresh = (
            tv_models.inception_v3(weights=None, init_weights=False)
            if spec.name == "inception_v3"
            else getattr(tv_models, spec.arch)(weights=None)
        )
        module.classification_models[_IMAGEAI_TYPES[spec.name]]["model"] = fresh
        prediction = module.ImageClassification()
        getattr(prediction, spec.imageai_setter)()
        prediction.setModelPath(str(weights))
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            prediction.loadModel()
    if not getattr(prediction, "_ImageClassification__model_loaded", False):
        lines = [line for line in printed.getvalue().splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if "Error" in line), "unknown error")
        raise InvalidWeightsError(
            f"ImageAI could not load {weights} as {spec.name} weights: {reason.strip()}"
        )
    return prediction


class ImageAIClassifier(Classifier):
    """Decodes uploads safely (our checks, EXIF, mode conversion), then ``classifyImage``."""

    def __init__(
        self, spec: ModelSpec, weights: Path, *, weights_sha256: str, threads: int | None
    ) -> None:
        super().__init__(
            model=spec.name,
            engine="imageai",
            labels=imagenet_labels(),
            # ImageAI's fixed transform (Resize 256, CenterCrop 224, ImageNet mean/std).
            preprocess=DEFAULT_PREPROCESS,
            weights_sha256=weights_sha256,
        )
        self._prediction = new_image_classification(spec, weights, threads=threads)

    def _classify_images(self, images: Sequence[bytes], top_k: int) -> list[ClassifiedImage]:
        self._check_top_k(top_k)
        results = []
        for index, data in enumerate(images):
            try:
                # Full decode (no draft): ImageAI's own transform then sees what it would see
                # when given the file, apart from the EXIF/alpha/16-bit corrections.
                image, info = open_image(data)
            except InvalidImageError as exc:
                if len(images) == 1:
                    raise
                raise InvalidImageError(f"Image {index}: {exc}", index=index) from exc
            labels, percentages = self._prediction.classifyImage(
                image, result_count=min(top_k, len(self.labels))
            )
            classifications = [
                Classification(label, percent / 100.0)
                for label, percent in zip(labels, percentages, strict=True)
            ]
            results.append(
                ClassifiedImage(
                    info=info,
                    classifications=classifications,
                    labels=self._asserted(classifications),
                )
            )
        return results

    def close(self) -> None:
        self._prediction = None
