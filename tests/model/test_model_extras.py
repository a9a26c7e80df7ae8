"""A missing extra is one line naming what to install: the engines, the model formats and
the ONNX export (the serving image has none of torch, ImageAI, LiteRT or Keras; the
container tests check there too). Each runs where the package is hidden
(tests/missing_packages.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.missing_packages import raised, said_without
from tideflow.extras import missing_extra


def test_the_torch_engine() -> None:
    done = said_without(
        "torch",
        "from image_classification.model import load_classifier\n"
        "load_classifier('efficientnet_lite0', 'torch')",
    )
    expected = missing_extra("torch", "the torch engine", "torch")
    assert raised(done) == f"ConfigurationError: {expected}"


def test_the_imageai_engine(mobilenet_weights: Path) -> None:
    done = said_without(
        "imageai",
        "from image_classification.model import load_classifier\n"
        f"load_classifier('mobilenet_v2', 'imageai', weights_path={str(mobilenet_weights)!r})",
    )
    expected = missing_extra("imageai", "the imageai engine", "imageai")
    assert raised(done) == f"ConfigurationError: {expected}"


@pytest.mark.parametrize(
    ("suffix", "package", "needed_by", "extra"),
    [
        (".tflite", "ai_edge_litert", "a .tflite model", "litert"),
        (".keras", "keras", "a .keras/.h5 model", "keras"),
    ],
)
def test_custom_model_formats(
    tmp_path: Path, suffix: str, package: str, needed_by: str, extra: str
) -> None:
    model = tmp_path / f"model{suffix}"
    model.write_bytes(b"not read: the runtime is missing first")
    model.with_suffix(".txt").write_text("a\nb\n")
    done = said_without(
        package,
        f"from image_classification.model import load_classifier\nload_classifier({str(model)!r})",
    )
    assert raised(done) == f"ConfigurationError: {missing_extra(extra, needed_by, package)}"


def test_no_export_and_no_torch_names_the_export_command(tmp_path: Path) -> None:
    done = said_without(
        "torch",
        "from image_classification.model import load_classifier\nload_classifier()",
        TIDEFLOW_MODEL_CACHE=str(tmp_path),
    )
    message = raised(done)
    assert message.startswith(
        f"ConfigurationError: no ONNX export of efficientnet_lite0 in {tmp_path} ("
    )
    assert "`python -m image_classification.model export efficientnet_lite0 --cache-dir DIR`" in (
        message
    )
    assert message.endswith(
        "exporting here needs the 'torch' extra (torch is not installed): pip install -e '.[torch]'"
    )
