"""Training your own classes: accuracy on held-out digits, the exported files, multi-label
pairs, the embedding cache, unreadable images, clear errors for bad input, and a CSV or an
--out that cannot make the trainer read or delete what it should not."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from image_classification.model import load_classifier
from image_classification.model.weights import sha256_file
from image_classification.train import DataError, load_dataset, train
from image_classification.train.__main__ import main
from tests.conftest import REPO
from tests.train.conftest import IMAGE_SIZE, options

pytestmark = pytest.mark.slow

# Measured here on 151 held-out pairs (112 px embeddings, 500 pairs): micro-F1 0.66. At the
# backbone's own 224 px it is higher (README). The assertion keeps a margin below 0.66.
PAIRS_MICRO_F1_FLOOR = 0.6


def test_single_label_digits_reach_93_percent_on_the_holdout(
    digits_model: tuple[Path, dict[str, Any]],
) -> None:
    _, card = digits_model
    metrics = card["metrics"]
    assert card["task"] == "single-label"
    assert metrics["split"] == "test"
    assert metrics["images"] >= 500
    assert metrics["accuracy"] >= 0.93, metrics
    assert len(metrics["per_class"]) == 10
    matrix = np.asarray(metrics["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == metrics["images"]
    assert card["data"]["images"] == 1797
    assert sum(card["data"]["split"].values()) == 1797


def test_model_folder_holds_one_onnx_labels_sidecar_and_card(
    digits_model: tuple[Path, dict[str, Any]],
) -> None:
    out, card = digits_model
    assert sorted(p.name for p in out.iterdir()) == [
        "card.json",
        "card.txt",
        "model.json",
        "model.onnx",
        "model.txt",
    ]
    assert (out / "model.txt").read_text().split() == [str(d) for d in range(10)]
    assert json.loads((out / "card.json").read_text()) == card
    assert card["model"]["sha256"] == sha256_file(out / "model.onnx")
    assert len(card["backbone"]["weights_sha256"]) == 64
    assert card["backbone"]["name"] == "efficientnet_lite0"
    sidecar = json.loads((out / "model.json").read_text())
    assert sidecar["input_size"] == 112 and sidecar["multi_label"] is False
    text = (out / "card.txt").read_text()
    assert "accuracy" in text and "Confusion matrix" in text
    assert f"{card['metrics']['accuracy']:.1%}" in text
    # Nothing left behind next to it.
    assert [p.name for p in out.parent.iterdir()] == ["digits"]


def test_exported_model_classifies_digits_on_its_own(
    digits_model: tuple[Path, dict[str, Any]], digits_dir: Path
) -> None:
    out, card = digits_model
    classifier = load_classifier(out / "model.onnx")
    assert classifier.model_id == card["model"]["model_id"]
    assert classifier.model_id.startswith(f"digits@{card['model']['sha256'][:12]}/onnxruntime/")
    images = [digits_dir / str(d) / "170.jpg" for d in range(10)]
    results = classifier.classify_batch([p.read_bytes() for p in images], top_k=3)
    right = sum(r[0].label == str(d) for d, r in enumerate(results))
    assert right >= 9, results
    assert all(len(r) == 3 for r in results)


def test_multi_label_pairs(pairs_model: tuple[Path, dict[str, Any]], pairs_csv: Path) -> None:
    out, card = pairs_model
    metrics = card["metrics"]
    assert card["task"] == "multi-label"
    assert metrics["micro_f1"] >= PAIRS_MICRO_F1_FLOOR, metrics
    assert len(card["thresholds"]) == 10
    sidecar = json.loads((out / "model.json").read_text())
    assert sidecar["multi_label"] is True and sidecar["thresholds"] == card["thresholds"]
    classifier = load_classifier(out / "model.onnx")
    assert classifier.multi_label
    rows = [line.split(",") for line in pairs_csv.read_text().splitlines()[1:41]]
    results = classifier.classify_batch_with_info(
        [(pairs_csv.parent / name).read_bytes() for name, _ in rows], top_k=1
    )
    thresholds = dict(zip(classifier.labels, card["thresholds"], strict=True))
    hits = 0
    for (_, labels), result in zip(rows, results, strict=True):
        asserted = {c.label for c in result.classifications if c.confidence >= thresholds[c.label]}
        # Every label above its threshold is kept, even beyond top_k=1.
        assert set(result.labels) == asserted
        assert len(result.classifications) >= max(1, len(asserted))
        hits += len(asserted & set(labels.split("|")))
    assert hits >= 40  # of 80 true labels


def test_second_run_embeds_only_new_images_and_lists_unreadable_ones(
    digits_dir: Path,
    digits_model: tuple[Path, dict[str, Any]],
    train_caches: dict[str, Path],
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    for digit in ("0", "1", "7"):
        (data / digit).mkdir(parents=True)
        for n in range(1, 5):
            shutil.copy(digits_dir / digit / f"{n}.jpg", data / digit / f"{n}.jpg")
    # One new image (not in the cache), one that is no image, one truncated JPEG.
    Image.open(digits_dir / "7" / "1.jpg").rotate(5).save(data / "7" / "new.jpg")
    (data / "1" / "notes.jpg").write_bytes(b"not an image at all")
    (data / "0" / "cut.jpg").write_bytes((digits_dir / "0" / "9.jpg").read_bytes()[:300])
    card = train(load_dataset(data), tmp_path / "small", options(train_caches))
    assert card["data"]["embeddings"]["cached"] == 12
    skipped = {Path(s["file"]).name for s in card["data"]["skipped"]}
    assert skipped == {"notes.jpg", "cut.jpg"}
    assert card["data"]["images"] == 13


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, " ".join((captured.out + captured.err).split())


def test_bad_input_gives_a_clear_message_and_writes_nothing(
    tmp_path: Path, digits_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "models" / "x"
    data = tmp_path / "data"
    (data / "cat").mkdir(parents=True)
    (data / "dog").mkdir()
    for n in range(1, 4):
        shutil.copy(digits_dir / "3" / f"{n}.jpg", data / "cat" / f"{n}.jpg")
    code, text = _run(capsys, str(data), "--out", str(out))
    assert code == 2 and "class folder(s) with no images: dog" in text
    shutil.rmtree(data / "dog")
    code, text = _run(capsys, str(data), "--out", str(out))
    assert code == 2 and "at least two classes" in text and "'cat'" in text

    csv = tmp_path / "labels.csv"
    csv.write_text("path,labels\ndata/cat/1.jpg,cat|pet\nmissing.jpg,dog\n")
    code, text = _run(capsys, str(csv), "--out", str(out))
    assert code == 2 and "line 3: no such file" in text and "missing.jpg" in text

    code, text = _run(capsys, str(tmp_path / "nowhere"), "--out", str(out))
    assert code == 2 and "does not exist" in text
    assert not out.exists() and not (tmp_path / "models").exists()

    out.mkdir(parents=True)
    (out / "keep.txt").write_text("mine")
    code, text = _run(capsys, str(data), "--out", str(out))
    assert code == 2 and "--force" in text
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--val", "0.5"), "Invalid value for '--val': must be at least 0 and below 0.5"),
        (("--epochs", "0"), "Invalid value for '--epochs': 0 is not in the range x>=1"),
        (("--backbone", "alexnet"), "'alexnet' is not one of 'densenet121'"),
        (("--from-corrections",), "error: give DATA (a folder or CSV file) or --from-corrections"),
    ],
)
def test_bad_options_exit_2_before_any_work(
    args: tuple[str, ...],
    said: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # a usage error's box on one line
    out = tmp_path / "model"
    code, text = _run(capsys, str(tmp_path), "--out", str(out), *args)
    assert code == 2 and said in text
    assert not out.exists()


def test_without_torch_the_command_names_the_extra_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in the serving image, which leaves torch out (tests/containers/test_image.py).
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *rest: None if name == "torch" else find_spec(name, *rest),
    )
    out = tmp_path / "model"
    code = main([str(tmp_path), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err == (
        "error: training needs the 'torch' extra (torch is not installed): "
        "pip install -e '.[torch]'\n"
    )


def test_too_few_images_per_label(tmp_path: Path, digits_dir: Path) -> None:
    for digit, count in (("1", 5), ("2", 2)):
        (tmp_path / digit).mkdir()
        for n in range(1, count + 1):
            shutil.copy(digits_dir / digit / f"{n}.jpg", tmp_path / digit / f"{n}.jpg")
    with pytest.raises(DataError, match=r"at least 3 readable images.*2 \(2\)"):
        load_dataset(tmp_path)


def _train_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "image_classification.train", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _copy_digits(digits_dir: Path, digit: str, into: Path, count: int) -> list[Path]:
    into.mkdir(parents=True, exist_ok=True)
    return [
        Path(shutil.copy(digits_dir / digit / f"{n}.jpg", into / f"{digit}-{n}.jpg"))
        for n in range(1, count + 1)
    ]


def test_csv_paths_outside_its_folder_need_allow_outside(tmp_path: Path, digits_dir: Path) -> None:
    folder = tmp_path / "set"
    ones = _copy_digits(digits_dir, "1", folder / "ones", 3)
    sevens = _copy_digits(digits_dir, "7", tmp_path / "elsewhere", 3)
    (folder / "linked.jpg").symlink_to(sevens[2])
    rows = [f"ones/{p.name},one" for p in ones]
    rows += [f"../elsewhere/{sevens[0].name},seven", f"{sevens[1]},seven", "linked.jpg,seven"]
    labels = folder / "labels.csv"
    labels.write_text("path,labels\n" + "\n".join(rows) + "\n")
    out = tmp_path / "model"

    refused = _train_command(str(labels), "--out", str(out))
    message = " ".join(refused.stderr.split())
    assert refused.returncode == 2, refused.stderr
    for line in (5, 6, 7):  # .., an absolute path, a symlink out of the folder
        assert f"line {line}: " in message
    assert "outside the CSV's folder" in message and "--allow-outside" in message
    assert not out.exists()

    # Asked for, they are read: the run goes on to the next check (a label needs 3 images).
    labels.write_text("path,labels\n" + "\n".join(rows[:5]) + "\n")  # 2 sevens from outside
    allowed = _train_command(str(labels), "--out", str(out), "--allow-outside")
    message = " ".join(allowed.stderr.split())
    assert allowed.returncode == 2
    assert "outside" not in message and "too few: seven (2)" in message


def test_files_over_the_size_cap_are_skipped_unread(
    tmp_path: Path, digits_dir: Path, train_caches: dict[str, Path]
) -> None:
    folder = tmp_path / "set"
    ones = _copy_digits(digits_dir, "1", folder, 4)
    sevens = _copy_digits(digits_dir, "7", folder, 4)
    huge = folder / "huge.jpg"  # sparse: 1 GB that takes no disk, and would take RAM
    with huge.open("wb") as file:
        file.write(b"\xff\xd8\xff")
        file.truncate(1024**3)
    rows = [f"{p.name},one" for p in ones] + [f"{p.name},seven" for p in sevens]
    labels = folder / "labels.csv"
    labels.write_text("path,labels\n" + "\n".join([*rows, "huge.jpg,seven"]) + "\n")
    out = tmp_path / "model"
    trained = _train_command(
        str(labels), "--out", str(out), "--augment", "0", "--image-size", str(IMAGE_SIZE),
        "--cache", str(train_caches["embeddings"]), "--quiet",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "Embedding images" not in trained.stderr  # --quiet: no progress bars
    assert "huge.jpg: larger than 64 MB" in " ".join(trained.stderr.split())
    card = json.loads((out / "card.json").read_text())
    assert card["data"]["images"] == 8
    assert [s["file"] for s in card["data"]["skipped"]] == [str(huge)]


def test_force_replaces_only_a_previous_model(tmp_path: Path, digits_dir: Path) -> None:
    data = tmp_path / "data"
    _copy_digits(digits_dir, "1", data / "one", 3)
    _copy_digits(digits_dir, "7", data / "seven", 3)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "important.txt").write_text("keep me")
    refused = _train_command(str(data), "--out", str(mine), "--force")
    assert refused.returncode == 2
    assert "holds files but no model (card.json)" in " ".join(refused.stderr.split())
    assert os.listdir(mine) == ["important.txt"]
