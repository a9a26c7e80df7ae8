"""A missing extra is one line naming what to install: the engines, the model formats and
the ONNX export (the serving image has none of torch, ImageAI, LiteRT or Keras; the
container tests check the same there). Packages are hidden as in tests/tideflow/test_extras.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from image_classification.model import ConfigurationError, load_classifier
from image_classification.model.engines.onnx import ensure_onnx
from image_classification.model.registry import get_spec
from tests.tideflow.test_extras import hide


def test_the_torch_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "torch", "image_classification.model.engines.torch")
    with pytest.raises(ConfigurationError) as caught:
        load_classifier("efficientnet_lite0", "torch")
    assert str(caught.value) == (
        "the torch engine needs the 'torch' extra (torch is not installed): "
        "pip install -e '.[torch]'"
    )


def test_the_imageai_engine(monkeypatch: pytest.MonkeyPatch, mobilenet_weights: Path) -> None:
    hide(monkeypatch, "imageai", "image_classification.model.engines.imageai")
    with pytest.raises(ConfigurationError, match=r"the imageai engine needs the 'imageai' extra"):
        load_classifier("mobilenet_v2", "imageai", weights_path=mobilenet_weights)


@pytest.mark.parametrize(
    ("suffix", "package", "needed_by", "extra"),
    [
        (".tflite", "ai_edge_litert", "a .tflite model", "litert"),
        (".keras", "keras", "a .keras/.h5 model", "keras"),
    ],
)
def test_custom_model_formats(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    suffix: str,
    package: str,
    needed_by: str,
    extra: str,
) -> None:
    hide(monkeypatch, package, package)
    model = tmp_path / f"model{suffix}"
    model.write_bytes(b"not read: the runtime is missing first")
    model.with_suffix(".txt").write_text("a\nb\n")
    with pytest.raises(ConfigurationError) as caught:
        load_classifier(model)
    assert str(caught.value) == (
        f"{needed_by} needs the '{extra}' extra ({package} is not installed): "
        f"pip install -e '.[{extra}]'"
    )


def test_no_export_and_no_torch_names_the_export_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hide(monkeypatch, "torch", "image_classification.model.engines.torch")
    spec = get_spec("efficientnet_lite0")
    with pytest.raises(ConfigurationError) as caught:
        ensure_onnx(spec, Path("unused.pth"), "ab" * 32, tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"no ONNX export of efficientnet_lite0 in {tmp_path} (")
    assert "`python -m image_classification.model export efficientnet_lite0 --cache-dir DIR`" in (
        message
    )
    assert message.endswith(
        "exporting here needs the 'torch' extra (torch is not installed): pip install -e '.[torch]'"
    )
