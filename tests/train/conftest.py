"""Training fixtures: scikit-learn's digits as class folders and as pasted pairs (CSV), and
one model of each trained once per session (embedding is the slow part; it is cached too).

The digits are embedded at 112 px (``image_size``) to keep the suite fast: a quarter of the
224 px cost; the README's demo trains at the backbone's own 224 px.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from image_classification.train import HeadOptions, TrainOptions, load_dataset, train
from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("make_digits", REPO / "scripts" / "make_digits.py")
assert _spec is not None and _spec.loader is not None
make_digits = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_digits)

IMAGE_SIZE = 112
PAIRS = 500


@pytest.fixture(scope="session")
def train_caches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train-caches")
    return {"embeddings": root / "embeddings.sqlite", "models": root / "models"}


def options(caches: dict[str, Path], **changes: Any) -> TrainOptions:
    return TrainOptions(
        image_size=IMAGE_SIZE,
        augment=0,
        test_fraction=0.3,
        embedding_cache=caches["embeddings"],
        model_cache_dir=caches["models"],
        head=HeadOptions(),
        **changes,
    )


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("digits") / "digits"
    make_digits.write_folders(folder)
    return folder


@pytest.fixture(scope="session")
def digits_model(
    digits_dir: Path, train_caches: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """(model folder, card) of a single-label model trained on all 1,797 digits."""
    return _trained(digits_dir, "digits", train_caches, tmp_path_factory)


@pytest.fixture(scope="session")
def pairs_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path: Path = make_digits.write_pairs(tmp_path_factory.mktemp("pairs"), PAIRS)
    return path


@pytest.fixture(scope="session")
def pairs_model(
    pairs_csv: Path, train_caches: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """(model folder, card) of a multi-label model trained on the pairs."""
    return _trained(pairs_csv, "pairs", train_caches, tmp_path_factory)


def _trained(
    data: Path, name: str, caches: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("models") / name
    return out, train(load_dataset(data), out, options(caches))
