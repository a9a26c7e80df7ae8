"""Fixtures for the classifier tests: real photos, generated weights, session-wide classifiers.

Every classifier is loaded once per session and every ONNX export lands in one session cache
directory, so the whole suite stays fast on a 2-core machine.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from importlib import util as importlib_util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from image_classification.model import Classifier, load_classifier


def _package_dir(name: str) -> Path:
    found = importlib_util.find_spec(name)
    assert found is not None and found.submodule_search_locations, f"{name} is not installed"
    return Path(next(iter(found.submodule_search_locations)))


SKIMAGE_DATA = _package_dir("skimage") / "data"
SKLEARN_IMAGES = _package_dir("sklearn") / "datasets" / "images"

# Real photos that install from PyPI (scikit-image and scikit-learn sample data).
PHOTO_FILES = {
    "cat": SKIMAGE_DATA / "chelsea.png",
    "espresso": SKIMAGE_DATA / "coffee.png",
    "rocket": SKIMAGE_DATA / "rocket.jpg",
    "motorcycle": SKIMAGE_DATA / "motorcycle_left.png",
    "astronaut": SKIMAGE_DATA / "astronaut.png",
    "china": SKLEARN_IMAGES / "china.jpg",
    "flower": SKLEARN_IMAGES / "flower.jpg",
}


@pytest.fixture(scope="session")
def photo_files() -> dict[str, Path]:
    return dict(PHOTO_FILES)


@pytest.fixture(scope="session")
def photos() -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in PHOTO_FILES.items()}


@pytest.fixture(scope="session")
def cat_image() -> Image.Image:
    with Image.open(PHOTO_FILES["cat"]) as image:
        return image.convert("RGB")


def encode_image(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def encode() -> Callable[..., bytes]:
    """``encode(image, "JPEG", quality=90)`` -> the encoded bytes."""
    return encode_image


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def lite0_onnx(onnx_cache: Path) -> Iterator[Classifier]:
    with load_classifier("efficientnet_lite0", "onnxruntime", cache_dir=onnx_cache) as clf:
        yield clf


@pytest.fixture(scope="session")
def lite0_torch() -> Iterator[Classifier]:
    with load_classifier("efficientnet_lite0", "torch") as clf:
        yield clf


@pytest.fixture(scope="session")
def mobilenet_onnx(mobilenet_weights: Path, onnx_cache: Path) -> Iterator[Classifier]:
    with load_classifier(
        "mobilenet_v2", "onnxruntime", weights_path=mobilenet_weights, cache_dir=onnx_cache
    ) as clf:
        yield clf


@pytest.fixture(scope="session")
def mobilenet_torch(mobilenet_weights: Path) -> Iterator[Classifier]:
    with load_classifier("mobilenet_v2", "torch", weights_path=mobilenet_weights) as clf:
        yield clf


@pytest.fixture(scope="session")
def mobilenet_imageai(mobilenet_weights: Path) -> Iterator[Classifier]:
    with load_classifier("mobilenet_v2", "imageai", weights_path=mobilenet_weights) as clf:
        yield clf


def assert_same_ranking(a: list, b: list, *, tolerance: float) -> None:
    """Same labels in the same order, confidences within ``tolerance``."""
    assert [c.label for c in a] == [c.label for c in b]
    np.testing.assert_allclose(
        [c.confidence for c in a], [c.confidence for c in b], atol=tolerance, rtol=0
    )


@pytest.fixture(scope="session")
def same_ranking() -> Callable[..., None]:
    return assert_same_ranking
