"""The classifier's exception hierarchy.

Every error the package raises on purpose is a ``ModelError``, so a caller can catch one type;
the subclasses tell apart what the caller can act on: a bad upload (``InvalidImageError``, the
event should be dead-lettered, not retried), a missing weights file (an operator must place or
download it), or a bad configuration.
"""

from __future__ import annotations


class ModelError(Exception):
    """Base class of every error raised by ``image_classification.model``."""


class ConfigurationError(ModelError, ValueError):
    """An unknown model or engine, or a model/engine combination that cannot work."""


class WeightsNotFoundError(ModelError, FileNotFoundError):
    """The weights file a model needs is not where it was looked for."""


class InvalidWeightsError(ModelError):
    """A weights or ONNX file exists but cannot be loaded for the requested model."""


class DownloadError(ModelError):
    """A weights download failed or did not match its checksum; nothing was kept."""


class InvalidImageError(ModelError, ValueError):
    """The bytes are not an image we accept (empty, not an image, truncated, too large...).

    The message is written for the person who uploaded the file. ``index`` is the position of
    the offending image when it came from a batch call, else ``None``.
    """

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index
