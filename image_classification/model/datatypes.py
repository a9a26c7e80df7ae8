"""Small value types shared by the public API."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Classification:
    """One label with its softmax probability (0..1)."""

    label: str
    confidence: float


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the upload is, read from the file itself.

    ``width`` and ``height`` are the size as a person sees the photo: after the EXIF
    orientation is applied and before any downscaling done for the model.
    """

    format: str  # Pillow's format name: "JPEG", "PNG", "WEBP", "GIF", "BMP" or "TIFF"
    width: int
    height: int
    mode: str  # the file's own pixel mode ("RGB", "CMYK", "I;16", ...), before conversion


class _DescribedByInfo:
    """``width``, ``height`` and ``format`` read from the ``info`` field of a subclass."""

    __slots__ = ()
    info: ImageInfo

    @property
    def width(self) -> int:
        return self.info.width

    @property
    def height(self) -> int:
        return self.info.height

    @property
    def format(self) -> str:
        return self.info.format


@dataclass(frozen=True, slots=True)
class DecodedImage(_DescribedByInfo):
    """An image ready for a model: ``pixels`` is float32, shape (3, crop, crop), normalized."""

    info: ImageInfo
    pixels: np.ndarray = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class ClassifiedImage(_DescribedByInfo):
    """The result of ``Classifier.classify_with_info``: the top-k labels plus the image's size."""

    info: ImageInfo
    classifications: list[Classification]
    # What the model asserts: the top-1 label for a single-label model, every label above its
    # threshold for a multi-label one (possibly none).
    labels: tuple[str, ...] = ()
