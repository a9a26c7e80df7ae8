"""Real photos through the real EfficientNet-Lite0 weights, and the engines agreeing."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from image_classification.model import (
    Classification,
    Classifier,
    InvalidImageError,
    decode_image,
)

CAT_LABELS = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}

# photo -> (labels of which one must appear, within the top n)
EXPECTED = {
    "cat": (CAT_LABELS, 5),
    "espresso": ({"espresso", "cup", "coffee mug"}, 3),
    "rocket": ({"missile", "projectile", "space shuttle"}, 3),
    "motorcycle": ({"moped", "motor scooter"}, 3),
    "china": ({"palace", "bell cote", "pagoda", "monastery", "castle"}, 3),
    "flower": ({"daisy"}, 3),
}


def top_labels(results: list[Classification], n: int) -> list[str]:
    return [c.label for c in results[:n]]


@pytest.mark.parametrize("photo", sorted(EXPECTED))
def test_real_photos_get_their_class(lite0_onnx: Classifier, photos: dict, photo: str) -> None:
    wanted, within = EXPECTED[photo]
    results = lite0_onnx.classify(photos[photo], top_k=5)
    assert len(results) == 5
    assert set(top_labels(results, within)) & wanted, (photo, results)


def test_espresso_is_top_1_with_high_confidence(lite0_onnx: Classifier, photos: dict) -> None:
    best = lite0_onnx.classify(photos["espresso"], top_k=1)[0]
    assert best.label == "espresso"
    assert best.confidence > 0.8


def test_results_are_sorted_probabilities(lite0_onnx: Classifier, photos: dict) -> None:
    results = lite0_onnx.classify(photos["cat"], top_k=10)
    confidences = [c.confidence for c in results]
    assert confidences == sorted(confidences, reverse=True)
    assert all(isinstance(c, Classification) and 0 <= c.confidence <= 1 for c in results)
    with pytest.raises(AttributeError):
        results[0].label = "dog"  # type: ignore[misc]  # frozen


def test_model_id_names_model_weights_engine_and_preprocessing(lite0_onnx: Classifier) -> None:
    assert re.fullmatch(r"efficientnet_lite0@[0-9a-f]{12}/onnxruntime/pre1", lite0_onnx.model_id)
    assert lite0_onnx.model_id.split("@")[1][:12] == lite0_onnx.weights_sha256[:12]


def test_classify_with_info_reports_format_and_size(lite0_onnx: Classifier, photos: dict) -> None:
    result = lite0_onnx.classify_with_info(photos["china"], top_k=3)
    assert (result.format, result.width, result.height) == ("JPEG", 640, 427)
    assert result.classifications == lite0_onnx.classify(photos["china"], top_k=3)


def test_batch_equals_single_calls(lite0_onnx: Classifier, photos: dict) -> None:
    names = ["cat", "espresso", "china", "flower"]
    batch = lite0_onnx.classify_batch([photos[n] for n in names], top_k=5)
    for name, results in zip(names, batch, strict=True):
        single = lite0_onnx.classify(photos[name], top_k=5)
        assert top_labels(results, 5) == top_labels(single, 5)
        np.testing.assert_allclose(
            [c.confidence for c in results], [c.confidence for c in single], atol=1e-5
        )
    assert lite0_onnx.classify_batch([], top_k=5) == []


def test_batch_names_the_bad_image(lite0_onnx: Classifier, photos: dict) -> None:
    with pytest.raises(InvalidImageError) as caught:
        lite0_onnx.classify_batch([photos["cat"], b"not an image", photos["china"]])
    assert caught.value.index == 1
    assert str(caught.value).startswith("Image 1:")


def test_classify_pixels_matches_classify(lite0_onnx: Classifier, photos: dict) -> None:
    pixels = decode_image(photos["cat"], lite0_onnx.preprocess).pixels
    from_pixels = lite0_onnx.classify_pixels(pixels[None], top_k=3)[0]
    assert top_labels(from_pixels, 3) == top_labels(lite0_onnx.classify(photos["cat"], 3), 3)
    probabilities = lite0_onnx.probabilities(np.stack([pixels, pixels]))
    assert probabilities.shape == (2, 1000)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="N x 3 x 224 x 224"):
        lite0_onnx.probabilities(pixels)


@pytest.mark.parametrize("top_k", [0, -1, 2.5])
def test_top_k_must_be_positive(lite0_onnx: Classifier, photos: dict, top_k: object) -> None:
    with pytest.raises(ValueError, match="top_k"):
        lite0_onnx.classify(photos["cat"], top_k=top_k)  # type: ignore[arg-type]


def test_top_k_beyond_the_labels_returns_all(lite0_onnx: Classifier, photos: dict) -> None:
    results = lite0_onnx.classify(photos["cat"], top_k=5000)
    assert len(results) == 1000
    assert sum(c.confidence for c in results) == pytest.approx(1.0, abs=1e-5)


def test_big_jpeg_is_classified_like_the_small_one(
    lite0_onnx: Classifier, cat_image: Image.Image, encode: Callable[..., bytes]
) -> None:
    # 12 MP: decoded through JPEG draft mode (1/8 scale) rather than in full.
    big = encode(cat_image.resize((4000, 2660), Image.Resampling.BICUBIC), "JPEG", quality=92)
    result = lite0_onnx.classify_with_info(big, top_k=5)
    assert (result.width, result.height) == (4000, 2660)
    assert set(top_labels(result.classifications, 5)) & CAT_LABELS


@pytest.mark.parametrize("photo", ["cat", "espresso", "rocket", "china", "flower", "astronaut"])
def test_onnxruntime_and_torch_agree_on_efficientnet_lite0(
    lite0_onnx: Classifier,
    lite0_torch: Classifier,
    photos: dict,
    photo: str,
    same_ranking: Callable[..., None],
) -> None:
    same_ranking(
        lite0_onnx.classify(photos[photo], top_k=5),
        lite0_torch.classify(photos[photo], top_k=5),
        tolerance=1e-3,
    )


@pytest.mark.parametrize("photo", ["cat", "espresso", "rocket", "china", "flower", "motorcycle"])
def test_onnxruntime_and_torch_agree_on_generated_mobilenet_v2(
    mobilenet_onnx: Classifier,
    mobilenet_torch: Classifier,
    photos: dict,
    photo: str,
    same_ranking: Callable[..., None],
) -> None:
    same_ranking(
        mobilenet_onnx.classify(photos[photo], top_k=5),
        mobilenet_torch.classify(photos[photo], top_k=5),
        tolerance=1e-3,
    )


@pytest.mark.parametrize(
    "photo", ["cat", "espresso", "rocket", "china", "flower", "motorcycle", "astronaut"]
)
def test_imageai_tutorial_engine_agrees_with_ours(
    mobilenet_imageai: Classifier, mobilenet_onnx: Classifier, photos: dict, photo: str
) -> None:
    # Same weights file, ImageAI's own preprocessing and labels vs ours: same top-5 labels
    # proves our transform and label mapping reproduce the tutorial's.
    theirs = mobilenet_imageai.classify(photos[photo], top_k=5)
    ours = mobilenet_onnx.classify(photos[photo], top_k=5)
    assert top_labels(theirs, 5) == top_labels(ours, 5)
    np.testing.assert_allclose(
        [c.confidence for c in theirs], [c.confidence for c in ours], atol=1e-3
    )


def test_imageai_engine_identity_and_info(mobilenet_imageai: Classifier, photos: dict) -> None:
    assert re.fullmatch(r"mobilenet_v2@[0-9a-f]{12}/imageai/pre1", mobilenet_imageai.model_id)
    result = mobilenet_imageai.classify_with_info(photos["china"], top_k=2)
    assert (result.format, result.width, result.height) == ("JPEG", 640, 427)
    with pytest.raises(InvalidImageError):
        mobilenet_imageai.classify(b"")
    with pytest.raises(Exception, match="classifies images, not tensors"):
        mobilenet_imageai.probabilities(np.zeros((1, 3, 224, 224), np.float32))
