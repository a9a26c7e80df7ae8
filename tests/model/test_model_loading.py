"""Model and engine selection, weights lookup, the ONNX cache, custom models, import cost."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from image_classification.model import (
    Classifier,
    ConfigurationError,
    InvalidWeightsError,
    WeightsNotFoundError,
    decode_image,
    load_classifier,
)
from image_classification.model import weights as weights_module
from image_classification.model.engines.onnx import CACHE_ENV, cached_onnx_path, default_cache_dir
from image_classification.model.registry import get_spec
from image_classification.model.weights import MODEL_PATH_ENV, resolve_weights

REPO = Path(__file__).resolve().parents[2]


# --- configuration errors ---------------------------------------------------------------------


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match="Known models: efficientnet_lite0, mobilenet_v2"):
        load_classifier("vgg19")


def test_unknown_engine() -> None:
    with pytest.raises(ConfigurationError, match="onnxruntime, torch, imageai"):
        load_classifier("efficientnet_lite0", "tensorflow")


def test_imageai_cannot_run_efficientnet() -> None:
    with pytest.raises(ConfigurationError, match="only runs ImageAI's model types"):
        load_classifier("efficientnet_lite0", "imageai")


@pytest.mark.parametrize("threads", [0, -1, 1.5])
def test_bad_thread_count(threads: object) -> None:
    with pytest.raises(ConfigurationError, match="threads"):
        load_classifier(threads=threads)  # type: ignore[arg-type]


def test_imageai_spellings_are_accepted() -> None:
    assert get_spec("MobileNetV2").name == "mobilenet_v2"
    assert get_spec("inceptionv3").name == "inception_v3"


# --- weights lookup ---------------------------------------------------------------------------


def test_missing_weights_name_the_file_and_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MODEL_PATH_ENV, raising=False)
    monkeypatch.setattr(weights_module, "REPO_ROOT", tmp_path)
    with pytest.raises(WeightsNotFoundError) as caught:
        load_classifier("mobilenet_v2")
    message = str(caught.value)
    assert "mobilenet_v2-b0353104.pth" in message
    assert f"python -m image_classification.model download mobilenet_v2 --dest {tmp_path}" in (
        message
    )
    assert MODEL_PATH_ENV in message


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match=r"no resnet-missing\.pth in"):
        load_classifier("resnet50", weights_path=tmp_path / "resnet-missing.pth")


def test_lookup_order(
    tmp_path: Path, mobilenet_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = get_spec("mobilenet_v2")
    repo, env_dir, explicit = (tmp_path / name for name in ("repo", "env", "explicit"))
    for folder in (repo, env_dir, explicit):
        folder.mkdir()
        shutil.copy(mobilenet_weights, folder / spec.weights_file)
    monkeypatch.setattr(weights_module, "REPO_ROOT", repo)
    monkeypatch.delenv(MODEL_PATH_ENV, raising=False)
    assert resolve_weights(spec, None) == repo / spec.weights_file
    monkeypatch.setenv(MODEL_PATH_ENV, str(env_dir))
    assert resolve_weights(spec, None) == env_dir / spec.weights_file
    monkeypatch.setenv(MODEL_PATH_ENV, str(env_dir / spec.weights_file))  # a file works too
    assert resolve_weights(spec, None) == env_dir / spec.weights_file
    assert resolve_weights(spec, explicit) == explicit / spec.weights_file
    assert resolve_weights(spec, mobilenet_weights) == mobilenet_weights


def test_efficientnet_weights_come_from_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_PATH_ENV, "/nonexistent")  # not consulted: the package has them
    path = resolve_weights(get_spec("efficientnet_lite0"), None)
    assert path.name == "efficientnet-lite0-57934424.pth" and path.is_file()


def test_garbage_weights_file(tmp_path: Path) -> None:
    bad = tmp_path / "mobilenet_v2-b0353104.pth"
    bad.write_bytes(b"this is not a pickle" * 10)
    with pytest.raises(InvalidWeightsError, match="Cannot read"):
        load_classifier("mobilenet_v2", "torch", weights_path=bad)


def test_weights_of_another_model(mobilenet_weights: Path) -> None:
    with pytest.raises(InvalidWeightsError, match="does not hold resnet50 weights"):
        load_classifier("resnet50", "torch", weights_path=mobilenet_weights)


def test_imageai_reports_a_failed_load(tmp_path: Path) -> None:
    from image_classification.model.engines.imageai import new_image_classification

    bad = tmp_path / "mobilenet_v2-b0353104.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(InvalidWeightsError, match="ImageAI could not load"):
        new_image_classification(get_spec("mobilenet_v2"), bad)


# --- ONNX cache -------------------------------------------------------------------------------


def test_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "tideflow" / "models"


def test_export_is_cached_by_weights_hash(
    mobilenet_onnx: Classifier, mobilenet_weights: Path, onnx_cache: Path
) -> None:
    path = cached_onnx_path(get_spec("mobilenet_v2"), mobilenet_onnx.weights_sha256, onnx_cache)
    assert path.is_file() and mobilenet_onnx.weights_sha256[:16] in path.name
    before = path.stat().st_mtime_ns
    with load_classifier(
        "mobilenet_v2", weights_path=mobilenet_weights, cache_dir=onnx_cache, threads=1
    ) as again:
        assert again.model_id == mobilenet_onnx.model_id
    assert path.stat().st_mtime_ns == before  # loaded from the cache, not exported again
    assert not [p for p in onnx_cache.iterdir() if p.name.endswith(".tmp")]


def test_unwritable_cache_dir_is_a_clear_error(mobilenet_weights: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigurationError, match="TIDEFLOW_MODEL_CACHE at a writable folder"):
        load_classifier("mobilenet_v2", weights_path=mobilenet_weights, cache_dir=blocker / "c")


def test_onnxruntime_start_up_does_not_import_torch(
    lite0_onnx: Classifier, onnx_cache: Path, photo_files: dict[str, Path]
) -> None:
    # lite0_onnx already filled the cache: a new replica must start from it without torch.
    script = textwrap.dedent(
        f"""
        import sys
        import image_classification.model as model
        assert "torch" not in sys.modules and "onnxruntime" not in sys.modules
        clf = model.load_classifier(cache_dir={str(onnx_cache)!r}, threads=1)
        data = open({str(photo_files["espresso"])!r}, "rb").read()
        print(clf.model_id, clf.classify(data, top_k=1)[0].label, "torch" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [lite0_onnx.model_id, "espresso", "False"]


# --- custom ONNX models -----------------------------------------------------------------------


def _copy_of_the_export(mobilenet_onnx: Classifier, onnx_cache: Path, model: Path) -> Path:
    """mobilenet_v2's cached ONNX export, copied to ``model`` (a custom model's file)."""
    spec = get_spec("mobilenet_v2")
    shutil.copy(cached_onnx_path(spec, mobilenet_onnx.weights_sha256, onnx_cache), model)
    return model


def test_custom_onnx_model_with_labels(
    mobilenet_onnx: Classifier, onnx_cache: Path, tmp_path: Path, photos: dict
) -> None:
    model = _copy_of_the_export(mobilenet_onnx, onnx_cache, tmp_path / "birds.onnx")
    labels = [f"bird {i}" for i in range(1000)]
    (tmp_path / "birds.txt").write_text("\n".join(labels) + "\n\n")
    with load_classifier(model) as custom:
        assert custom.model_id.startswith("birds@") and custom.model_id.endswith(
            "/onnxruntime/pre1"
        )
        ours = custom.classify(photos["cat"], top_k=5)
        reference = mobilenet_onnx.classify(photos["cat"], top_k=5)
        assert [c.label for c in ours] == [
            f"bird {mobilenet_onnx.labels.index(c.label)}" for c in reference
        ]
        np.testing.assert_allclose(
            [c.confidence for c in ours], [c.confidence for c in reference], atol=1e-6
        )


def test_custom_onnx_model_errors(
    mobilenet_onnx: Classifier, onnx_cache: Path, tmp_path: Path, photos: dict
) -> None:
    model = _copy_of_the_export(mobilenet_onnx, onnx_cache, tmp_path / "m.onnx")
    with pytest.raises(ConfigurationError, match=r"Labels file .* does not exist"):
        load_classifier(model)
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    with pytest.raises(ConfigurationError, match="outputs 1000 classes but the labels file has 3"):
        load_classifier(model, labels_path=tmp_path / "three.txt")
    with pytest.raises(ConfigurationError, match="onnxruntime engine only"):
        load_classifier(model, "torch")
    with pytest.raises(WeightsNotFoundError):
        load_classifier(tmp_path / "absent.onnx")


def test_custom_onnx_model_ending_in_softmax(tmp_path: Path, photos: dict) -> None:
    import torch

    from image_classification.model.engines.torch import export_onnx

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.fc(x.mean(dim=(2, 3))), dim=1)

    torch.manual_seed(0)
    tiny = Tiny().eval()
    path = tmp_path / "tiny.onnx"
    export_onnx(tiny, path=path, crop=96, opset=17)
    (tmp_path / "tiny.txt").write_text("red\ngreen\nblue\n")
    with load_classifier(path) as clf:
        assert clf.preprocess.crop == 96  # read from the model's input shape
        results = clf.classify(photos["cat"], top_k=3)
        pixels = decode_image(photos["cat"], clf.preprocess).pixels[None]
    with torch.no_grad():
        expected = tiny(torch.from_numpy(pixels))[0].numpy()
    # The model's own probabilities, not a softmax of them.
    assert sorted(c.confidence for c in results) == pytest.approx(sorted(expected), abs=1e-5)


# --- the other ImageAI model types ------------------------------------------------------------


def test_old_densenet_checkpoint_keys_are_renamed(tmp_path: Path, photos: dict) -> None:
    # torchvision's densenet121-a639ec97.pth predates PyTorch 0.4: its layers are named
    # "norm.1" (now "norm1") and it has no num_batches_tracked buffers.
    import re

    import torch
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.densenet121(weights=None).state_dict()
    old_style = {
        re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", key): value
        for key, value in state.items()
        if not key.endswith("num_batches_tracked")
    }
    assert "features.denseblock1.denselayer1.norm.1.weight" in old_style
    path = tmp_path / "densenet121-a639ec97.pth"
    torch.save(old_style, path)
    with load_classifier("densenet121", "torch", weights_path=tmp_path) as clf:
        assert len(clf.classify(photos["cat"], top_k=5)) == 5


def test_inception_v3_runs_at_299(tmp_path: Path, photos: dict) -> None:
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.inception_v3(weights=None, init_weights=False)
    torch.save(model.state_dict(), tmp_path / "inception_v3_google-0cc3c7bd.pth")
    with load_classifier("inception_v3", "torch", weights_path=tmp_path) as clf:
        assert (clf.preprocess.resize, clf.preprocess.crop) == (342, 299)
        assert len(clf.classify(photos["cat"], top_k=5)) == 5
