"""Class labels: the ImageNet-1k names shipped with the package, and custom label files.

``imagenet_labels.txt`` is ImageAI 3.0.3's ``Classification/imagenet_classes.txt`` copied
verbatim (one name per line, index = class id), so our labels read exactly as ImageAI prints
them ("tabby", "Egyptian cat", "espresso"). Like ImageAI's list it has two repeated names:
"crane" (134 the bird, 517 the machine) and "maillot" (638, 639); we keep them so the
``imageai`` engine and ours always agree.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from .errors import ConfigurationError

IMAGENET_LABELS_FILE = "imagenet_labels.txt"
IMAGENET_NUM_CLASSES = 1000


@cache
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, index = class id."""
    text = resources.files(__package__).joinpath(IMAGENET_LABELS_FILE).read_text("utf-8")
    labels = tuple(line.strip() for line in text.splitlines())
    if len(labels) != IMAGENET_NUM_CLASSES:  # a broken install, not a user error
        raise RuntimeError(f"{IMAGENET_LABELS_FILE} has {len(labels)} lines, expected 1000")
    return labels


def read_labels_file(path: Path) -> tuple[str, ...]:
    """Read a custom model's labels: one per line, blank lines at the end ignored."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigurationError(
            f"Labels file {path} does not exist. A custom .onnx model needs a text file with "
            "one label per line; pass labels_path=... or put <model>.txt next to the model."
        ) from None
    labels = [line.strip() for line in text.splitlines()]
    while labels and not labels[-1]:
        labels.pop()
    if not labels:
        raise ConfigurationError(f"Labels file {path} is empty; it needs one label per line.")
    return tuple(labels)
