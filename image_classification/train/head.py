"""The head on top of the frozen backbone: split, options, thresholds, metrics (its training,
with torch, is in ``fit``).

* Split: seeded and stratified, by class (single-label) or by label combination
  (multi-label; combinations too rare to split are pooled), into train / validation / test.
* Multi-label thresholds: per label, the one that maximizes F1 on the validation split.
* Metrics on the test split: per-class precision/recall/F1, accuracy and the confusion matrix
  (single-label) or micro/macro F1 (multi-label).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))


@dataclass(frozen=True)
class Split:
    train: list[int]
    val: list[int]
    test: list[int]


def stratified_split(
    targets: Sequence[tuple[int, ...]],
    *,
    multi_label: bool,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> Split:
    """Indices for train / val / test; every stratum keeps at least one training example."""
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, target in enumerate(targets):
        groups[tuple(sorted(target)) if multi_label else target[0]].append(i)
    if multi_label:
        # Combinations with fewer than 3 images cannot be split three ways: pool them.
        pooled = [i for key, items in groups.items() if len(items) < 3 for i in items]
        groups = {key: items for key, items in groups.items() if len(items) >= 3}
        if pooled:
            groups[("__rare__",)] = pooled
    rng = random.Random(seed)
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for key in sorted(groups, key=str):
        items = list(groups[key])
        rng.shuffle(items)
        n = len(items)
        n_test = (
            min(n - 1, max(1 if n >= 3 else 0, round(n * test_fraction))) if test_fraction else 0
        )
        n_val = min(n - 1 - n_test, max(1 if n >= 3 else 0, round(n * val_fraction)))
        test.extend(items[:n_test])
        val.extend(items[n_test : n_test + n_val])
        train.extend(items[n_test + n_val :])
    return Split(sorted(train), sorted(val), sorted(test))


@dataclass
class TrainedHead:
    mean: np.ndarray
    scale: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray]]  # (weight out x in, bias) per linear layer
    multi_label: bool
    epochs: int
    best_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (softmax or sigmoid) for raw embeddings, as the exported model gives."""
        h = (x - self.mean) / self.scale
        for i, (w, b) in enumerate(self.layers):
            h = h @ w.T + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0)
        if self.multi_label:
            return 1 / (1 + np.exp(-h))
        h = h - h.max(axis=1, keepdims=True)
        e = np.exp(h)
        return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class HeadOptions:
    epochs: int = 200
    patience: int = 15
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    hidden: int = 0
    dropout: float = 0.2
    seed: int = 0


def choose_thresholds(scores: np.ndarray, truth: np.ndarray) -> list[float]:
    """Per label, the grid threshold with the best F1 on the validation split (0.5 for labels
    with no positive example there; ties go to the threshold nearest 0.5)."""
    thresholds = []
    for j in range(truth.shape[1]):
        if not truth[:, j].any():
            thresholds.append(0.5)
            continue
        best = max(
            THRESHOLD_GRID,
            key=lambda t: (micro_f1(scores[:, j] >= t, truth[:, j].astype(bool)), -abs(t - 0.5)),
        )
        thresholds.append(best)
    return thresholds


def single_label_metrics(
    predicted: np.ndarray, truth: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    n = len(labels)
    matrix = np.zeros((n, n), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        matrix[t, p] += 1
    per_class = []
    for i, label in enumerate(labels):
        tp = int(matrix[i, i])
        fp = int(matrix[:, i].sum() - tp)
        fn = int(matrix[i, :].sum() - tp)
        per_class.append(_prf(label, tp, fp, fn))
    accuracy = float(np.trace(matrix) / matrix.sum()) if matrix.sum() else math.nan
    return {
        "images": len(truth),
        "accuracy": round(accuracy, 4),
        "macro_f1": round(float(np.mean([c["f1"] for c in per_class])), 4),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def multi_label_metrics(
    predicted: np.ndarray, truth: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    predicted = predicted.astype(bool)
    truth = truth.astype(bool)
    per_class = []
    for j, label in enumerate(labels):
        tp = int((predicted[:, j] & truth[:, j]).sum())
        fp = int((predicted[:, j] & ~truth[:, j]).sum())
        fn = int((~predicted[:, j] & truth[:, j]).sum())
        per_class.append(_prf(label, tp, fp, fn))
    return {
        "images": len(truth),
        "micro_f1": round(micro_f1(predicted, truth), 4),
        "macro_f1": round(float(np.mean([c["f1"] for c in per_class])), 4),
        "exact_match": round(float((predicted == truth).all(axis=1).mean()), 4)
        if len(truth)
        else math.nan,
        "per_class": per_class,
    }


def _prf(label: str, tp: int, fp: int, fn: int) -> dict[str, Any]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "label": label,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "support": tp + fn,
    }


def micro_f1(predicted: np.ndarray, truth: np.ndarray) -> float:
    """F1 over every (image, label) decision of 0/1 matrices (one label's column: its F1)."""
    tp = float((predicted & truth).sum())
    fp = float((predicted & ~truth).sum())
    fn = float((~predicted & truth).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
