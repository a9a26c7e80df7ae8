"""The model command line (``python -m image_classification.model``), in process: what scripts
read from it (the export's path), classify's lines and exit status, the model list, and bad
input as one red line or a usage error, with exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from image_classification.model import Classifier
from image_classification.model.__main__ import main
from image_classification.model.engines.onnx import CACHE_ENV
from image_classification.model.registry import MODELS


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_export_prints_only_the_path(
    lite0_onnx: Classifier, onnx_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # scripts/build-image.sh reads it: export_path=$(python -m ... export --quiet)
    code, out, err = _run(capsys, "export", "--quiet", "--cache-dir", str(onnx_cache))
    assert code == 0, err
    path = Path(out.strip())
    assert out == f"{path}\n"
    assert path.parent == onnx_cache and path.suffix == ".onnx" and path.is_file()


def test_classify_prints_the_model_then_a_line_per_file(
    lite0_onnx: Classifier,
    onnx_cache: Path,
    photo_files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(onnx_cache))
    notes = tmp_path / "notes.jpg"
    notes.write_text("not an image")
    espresso = photo_files["espresso"]
    code, out, _ = _run(
        capsys, "classify", "-q", "--top-k", "2", "--threads", "1", str(espresso), str(notes)
    )
    assert code == 1  # a file was no image
    model_line, espresso_line, notes_line = out.splitlines()
    assert model_line == lite0_onnx.model_id
    assert espresso_line.startswith(f"{espresso} (PNG 600x400): espresso 0.")
    assert len(espresso_line.split(": ", 1)[1].split(", ")) == 2
    assert notes_line.startswith(f"{notes}: error: The file is not an image")


def test_list_names_every_model_and_how_to_get_its_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_PATH", str(tmp_path))  # no torchvision weights there
    code, out, _ = _run(capsys, "list")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert list(lines) == list(MODELS)
    assert "engines: onnxruntime, torch, imageai" in lines["mobilenet_v2"]
    assert (
        "missing: python -m image_classification.model download mobilenet_v2"
        in (lines["mobilenet_v2"])
    )
    assert "299px" in lines["inception_v3"]
    assert "missing" not in lines["efficientnet_lite0"]  # its weights ship in a package


def test_a_model_error_is_one_red_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "classify", "--engine", "imageai", "--model", "vgg16", "x.jpg")
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    assert line.startswith("error: The imageai engine only runs ImageAI's model types")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("classify", "--engine", "tpu", "x.jpg"), "'tpu' is not one of 'onnxruntime'"),
        (("classify", "--threads", "0", "x.jpg"), "0 is not in the range x>=1"),
        (("classify",), "Missing argument"),
        (("download", "efficientnet_lite0"), "'efficientnet_lite0' is not one of"),
        (("convert",), "No such command 'convert'"),
    ],
)
def test_bad_arguments_are_usage_errors(
    args: tuple[str, ...],
    said: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # the message on one line
    code, out, err = _run(capsys, *args)
    assert code == 2 and out == ""
    assert said in err


def test_help_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    for command in ("download", "export", "list", "classify"):
        assert f" {command} " in out
