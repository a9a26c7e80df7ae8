"""The ``Classifier`` every engine returns, and the tensor-engine implementation."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from .datatypes import Classification, ClassifiedImage, DecodedImage
from .errors import ConfigurationError, InvalidImageError
from .preprocess import PreprocessSpec, decode_image

# Batches are run in chunks of at most this many images, bounding the memory a large
# classify_batch call can take (32 x 3 x 224 x 224 float32 = 19 MB).
MAX_CHUNK = 32


class Classifier(abc.ABC):
    """A loaded model. Build it with ``load_classifier``; it is meant to live for the process.

    Thread-safe for concurrent ``classify*`` calls (ONNX Runtime sessions and torch modules in
    inference mode are).
    """

    def __init__(
        self,
        *,
        model: str,
        engine: str,
        labels: Sequence[str],
        preprocess: PreprocessSpec,
        weights_sha256: str,
        thresholds: Sequence[float] | None = None,
    ) -> None:
        self.model = model
        self.engine = engine
        self.labels: tuple[str, ...] = tuple(labels)
        self.preprocess = preprocess
        self.weights_sha256 = weights_sha256
        # Multi-label models (independent sigmoid outputs) have one decision threshold per
        # label; single-label models (softmax) have none.
        self.thresholds: tuple[float, ...] | None = (
            tuple(float(t) for t in thresholds) if thresholds is not None else None
        )
        if self.thresholds is not None and len(self.thresholds) != len(self.labels):
            raise ConfigurationError(
                f"{len(self.thresholds)} thresholds for {len(self.labels)} labels; "
                "a multi-label model needs one threshold per label."
            )

    @property
    def multi_label(self) -> bool:
        """True for a model whose labels are independent yes/no decisions (sigmoid outputs)."""
        return self.thresholds is not None

    @property
    def model_id(self) -> str:
        """Which model, weights, engine and preprocessing produced a result, for storing with it.

        ``<model>@<first 12 hex of the weights' sha256>/<engine>/<preprocessing version>``.
        """
        return f"{self.model}@{self.weights_sha256[:12]}/{self.engine}/{self.preprocess.version}"

    def classify(self, image: bytes, top_k: int = 5) -> list[Classification]:
        """Top-k labels of one encoded image (JPEG, PNG, ...), best first (at most as many as
        the model has labels)."""
        return self._classify_images([image], top_k)[0].classifications

    def classify_with_info(self, image: bytes, top_k: int = 5) -> ClassifiedImage:
        """Like ``classify``, plus the image's format and displayed width/height (no extra cost)."""
        return self._classify_images([image], top_k)[0]

    def classify_batch(self, images: Sequence[bytes], top_k: int = 5) -> list[list[Classification]]:
        """Top-k labels of several images, one model run per chunk. One bad image raises
        ``InvalidImageError`` with ``.index`` set; classify one at a time to isolate bad files."""
        return [result.classifications for result in self._classify_images(images, top_k)]

    def classify_batch_with_info(
        self, images: Sequence[bytes], top_k: int = 5
    ) -> list[ClassifiedImage]:
        return self._classify_images(images, top_k)

    def classify_pixels(self, pixels: np.ndarray, top_k: int = 5) -> list[list[Classification]]:
        """Top-k labels of already preprocessed input, float32 N x 3 x crop x crop."""
        return [self._top_k(row, top_k) for row in self.probabilities(pixels)]

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Softmax probabilities, N x len(labels), for preprocessed input (tensor engines)."""
        raise ConfigurationError(
            f"The {self.engine} engine classifies images, not tensors; use classify()."
        )

    def close(self) -> None:  # noqa: B027 - engines with resources override it
        """Release the engine's resources; the classifier cannot be used afterwards."""

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.model_id}>"

    @abc.abstractmethod
    def _classify_images(self, images: Sequence[bytes], top_k: int) -> list[ClassifiedImage]: ...

    def _check_top_k(self, top_k: int) -> None:
        # More than the number of labels is fine (a 3-class custom model asked for the usual
        # top 5 returns 3); less than one is a bug in the caller.
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")

    def _top_k(self, probabilities: np.ndarray, top_k: int) -> list[Classification]:
        """The top-k labels, best first; for a multi-label model also every label above its
        threshold, even beyond k."""
        self._check_top_k(top_k)
        # Stable sort of the negated scores: ties keep the lower class id first, so the order is
        # deterministic and identical across engines.
        order = np.argsort(-probabilities, kind="stable")
        if self.thresholds is None:
            order = order[:top_k]
        else:
            above = probabilities >= np.asarray(self.thresholds)
            order = np.array([i for rank, i in enumerate(order) if rank < top_k or above[i]])
        return [Classification(self.labels[i], float(probabilities[i])) for i in order]

    def _asserted(self, classifications: list[Classification]) -> tuple[str, ...]:
        """The labels the model asserts, from ``_top_k``'s answer (see ``ClassifiedImage``)."""
        if self.thresholds is None:
            return (classifications[0].label,) if classifications else ()
        threshold = dict(zip(self.labels, self.thresholds, strict=True))
        return tuple(c.label for c in classifications if c.confidence >= threshold[c.label])


class Runner(Protocol):
    """What a tensor engine provides: N x 3 x H x W float32 in, N x classes scores out.

    ``outputs_probabilities``: True if the scores are already softmax probabilities, False for
    logits, None when unknown (custom ONNX models): then rows that are valid distributions are
    taken as probabilities.
    """

    outputs_probabilities: bool | None

    def run(self, pixels: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


class TensorClassifier(Classifier):
    """Our preprocessing, then a tensor engine (ONNX Runtime or PyTorch)."""

    def __init__(
        self,
        runner: Runner,
        *,
        model: str,
        engine: str,
        labels: Sequence[str],
        preprocess: PreprocessSpec,
        weights_sha256: str,
        thresholds: Sequence[float] | None = None,
        activation: str | None = None,
        layout: str = "NCHW",
    ) -> None:
        super().__init__(
            model=model,
            engine=engine,
            labels=labels,
            preprocess=preprocess,
            weights_sha256=weights_sha256,
            thresholds=thresholds,
        )
        self._runner = runner
        # How raw outputs become confidences: "softmax", "sigmoid", "none" (already
        # probabilities) or None (the runner's outputs_probabilities decides).
        self._activation = activation
        self._layout = layout

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        crop = self.preprocess.crop
        if pixels.ndim != 4 or pixels.shape[1:] != (3, crop, crop):
            raise ValueError(f"pixels must be N x 3 x {crop} x {crop}, got {pixels.shape}")
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        chunks = [
            self._scores(pixels[start : start + MAX_CHUNK])
            for start in range(0, len(pixels), MAX_CHUNK)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, len(self.labels)))

    def close(self) -> None:
        self._runner.close()

    def decode(self, image: bytes) -> DecodedImage:
        """The model's input for one encoded image (``InvalidImageError`` when it is not one)."""
        return decode_image(image, self.preprocess)

    def labelled(
        self, decoded: DecodedImage, probabilities: np.ndarray, top_k: int
    ) -> ClassifiedImage:
        """``decoded``'s result from its row of ``probabilities``."""
        self._check_top_k(top_k)
        classifications = self._top_k(probabilities, top_k)
        return ClassifiedImage(
            info=decoded.info,
            classifications=classifications,
            labels=self._asserted(classifications),
        )

    def _classify_images(self, images: Sequence[bytes], top_k: int) -> list[ClassifiedImage]:
        self._check_top_k(top_k)
        decoded = []
        for index, data in enumerate(images):
            try:
                decoded.append(self.decode(data))
            except InvalidImageError as exc:
                if len(images) == 1:
                    raise
                raise InvalidImageError(f"Image {index}: {exc}", index=index) from exc
        if not decoded:
            return []
        probabilities = self.probabilities(np.stack([item.pixels for item in decoded]))
        return [
            self.labelled(item, row, top_k)
            for item, row in zip(decoded, probabilities, strict=True)
        ]

    def _scores(self, pixels: np.ndarray) -> np.ndarray:
        if self._layout == "NHWC":
            pixels = np.ascontiguousarray(pixels.transpose(0, 2, 3, 1))
        scores = np.asarray(self._runner.run(pixels), dtype=np.float64)
        if scores.ndim != 2 or scores.shape[1] != len(self.labels):
            raise ConfigurationError(
                f"The model outputs shape {scores.shape} but there are {len(self.labels)} labels; "
                "the labels file does not match the model."
            )
        if self._activation == "softmax":
            return softmax(scores)
        if self._activation == "sigmoid":
            return 1.0 / (1.0 + np.exp(-scores))
        if self._activation == "none":
            return scores
        if self._runner.outputs_probabilities or (
            self._runner.outputs_probabilities is None and _is_distribution(scores)
        ):
            return scores
        return softmax(scores)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _is_distribution(scores: np.ndarray) -> bool:
    return bool(
        scores.size
        and scores.min() >= 0.0
        and scores.max() <= 1.0
        and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3)
    )
