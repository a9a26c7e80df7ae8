"""Adaptive batching: images classified from several threads share one inference call, get
the same answers as one at a time, fail alone, and a lone image does not wait."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from image_classification.model import ClassifiedImage, Classifier, DecodedImage
from image_classification.model.batching import BatchingClassifier
from image_classification.model.classifier import TensorClassifier
from image_classification.model.errors import InvalidImageError


@pytest.fixture
def held_decoding(
    lite0_onnx: Classifier, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[int], None]]:
    """``hold(n)``: the next ``n`` decodes finish together, so all ``n`` callers have
    started decoding before any of them is done (as under load)."""
    assert isinstance(lite0_onnx, TensorClassifier)
    decode = lite0_onnx.decode

    def hold(parties: int) -> None:
        barrier = threading.Barrier(parties, timeout=30)

        def decode_together(image: bytes) -> DecodedImage:
            try:
                return decode(image)
            finally:
                barrier.wait()

        monkeypatch.setattr(lite0_onnx, "decode", decode_together)

    yield hold


def _classify_all(batching: BatchingClassifier, images: list[bytes]) -> list[object]:
    def one(image: bytes) -> ClassifiedImage | Exception:
        try:
            return batching.classify_with_info(image, top_k=3)
        except Exception as exc:
            return exc

    with concurrent.futures.ThreadPoolExecutor(len(images)) as threads:
        return list(threads.map(one, images))


def test_concurrent_images_share_one_call_with_the_same_answers(
    lite0_onnx: Classifier, photos: dict[str, bytes], held_decoding: Callable[[int], None]
) -> None:
    images = list(photos.values())[:4] * 2
    alone = [lite0_onnx.classify_with_info(image, top_k=3) for image in images]
    held_decoding(len(images))
    batching = BatchingClassifier(lite0_onnx, max_batch=8, max_delay=30)
    together = _classify_all(batching, images)
    assert batching.batches == 1 and batching.images == 8
    for one, other in zip(alone, together, strict=True):
        assert isinstance(other, ClassifiedImage)
        assert [c.label for c in other.classifications] == [c.label for c in one.classifications]
        assert other.classifications[0].confidence == pytest.approx(
            one.classifications[0].confidence, abs=1e-4
        )
        assert (other.width, other.height, other.format) == (one.width, one.height, one.format)


def test_a_bad_image_fails_alone_and_batches_are_capped(
    lite0_onnx: Classifier, photos: dict[str, bytes], held_decoding: Callable[[int], None]
) -> None:
    images = [*list(photos.values())[:4], b"not an image at all", *list(photos.values())[:4]]
    held_decoding(len(images))
    batching = BatchingClassifier(lite0_onnx, max_batch=3, max_delay=30)
    results = _classify_all(batching, images)
    assert isinstance(results[4], InvalidImageError)
    assert all(isinstance(r, ClassifiedImage) for i, r in enumerate(results) if i != 4)
    assert batching.images == 8 and batching.batches == 3  # 3 + 3 + 2


def test_a_lone_image_does_not_wait_for_company(
    lite0_onnx: Classifier, photos: dict[str, bytes]
) -> None:
    batching = BatchingClassifier(lite0_onnx, max_batch=8, max_delay=60)
    started = time.monotonic()
    result = batching.classify_with_info(next(iter(photos.values())), top_k=5)
    assert time.monotonic() - started < 10  # not the 60 s delay: nothing else was coming
    assert len(result.classifications) == 5 and batching.batches == 1


def test_batch_size_one_classifies_directly(
    lite0_onnx: Classifier, photos: dict[str, bytes]
) -> None:
    batching = BatchingClassifier(lite0_onnx, max_batch=1, max_delay=0)
    image = next(iter(photos.values()))
    assert batching.classify_with_info(image) == lite0_onnx.classify_with_info(image)
    assert batching.batches == 0
    with pytest.raises(ValueError, match="max_batch"):
        BatchingClassifier(lite0_onnx, max_batch=0, max_delay=0)
