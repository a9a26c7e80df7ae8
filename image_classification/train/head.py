"""The head on top of the frozen backbone: split, train (CPU, torch), thresholds, metrics.

* Split: seeded and stratified, by class (single-label) or by label combination
  (multi-label; combinations too rare to split are pooled), into train / validation / test.
* Training: standardized embeddings -> one linear layer (optionally a hidden layer), AdamW,
  class-balanced loss (inverse-frequency class weights for softmax, ``pos_weight`` for
  sigmoid), dropout on the embedding as a light regularizer, early stopping on the
  validation loss (the best epoch's weights are kept).
* Multi-label thresholds: per label, the one that maximizes F1 on the validation split.
* Metrics on the test split: per-class precision/recall/F1, accuracy and the confusion matrix
  (single-label) or micro/macro F1 (multi-label).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
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


def train_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    multi_label: bool,
    options: HeadOptions,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainedHead:
    """``y`` is class indices (single-label) or a 0/1 matrix (multi-label)."""
    import torch

    # Small matrices: one thread is as fast and does not fight the machine's other work.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(
            x_train,
            y_train,
            x_val,
            y_val,
            multi_label=multi_label,
            options=options,
            on_epoch=on_epoch,
        )
    finally:
        torch.set_num_threads(threads)


def _train(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    multi_label: bool,
    options: HeadOptions,
    on_epoch: Callable[[int, dict[str, float]], None] | None,
) -> TrainedHead:
    import torch
    from torch import nn

    torch.manual_seed(options.seed)
    generator = torch.Generator().manual_seed(options.seed)
    mean = x_train.mean(axis=0)
    # Features that barely vary in training (dead units) must not blow up at inference: floor
    # their scale at a tenth of the typical feature's.
    std = x_train.std(axis=0)
    scale = np.maximum(std, 0.1 * float(np.median(std)) + 1e-6)
    xt = torch.from_numpy(((x_train - mean) / scale).astype(np.float32))
    xv = torch.from_numpy(((x_val - mean) / scale).astype(np.float32))
    dim = xt.shape[1]
    num_outputs = (
        y_train.shape[1] if multi_label else int(max(y_train.max(), y_val.max(initial=0)) + 1)
    )
    layers: list[nn.Module] = [nn.Dropout(options.dropout)]
    if options.hidden:
        layers += [nn.Linear(dim, options.hidden), nn.ReLU(), nn.Dropout(options.dropout)]
        dim = options.hidden
    layers.append(nn.Linear(dim, num_outputs))
    model = nn.Sequential(*layers)
    loss_fn: nn.Module
    if multi_label:
        yt = torch.from_numpy(y_train.astype(np.float32))
        yv = torch.from_numpy(y_val.astype(np.float32))
        positives = yt.sum(dim=0)
        negatives = len(yt) - positives
        pos_weight = (negatives / positives.clamp(min=1)).clamp(1.0, 10.0)
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        val_loss_fn: nn.Module = nn.BCEWithLogitsLoss()
    else:
        yt = torch.from_numpy(y_train.astype(np.int64))
        yv = torch.from_numpy(y_val.astype(np.int64))
        counts = torch.bincount(yt, minlength=num_outputs).float()
        weights = counts.sum() / (num_outputs * counts.clamp(min=1))
        loss_fn = nn.CrossEntropyLoss(weight=weights)
        val_loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay
    )
    best_loss = math.inf
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    best_epoch = 0
    history: list[dict[str, float]] = []
    epoch = 0
    for epoch in range(1, options.epochs + 1):
        model.train()
        order = torch.randperm(len(xt), generator=generator)
        total = 0.0
        for start in range(0, len(xt), options.batch_size):
            idx = order[start : start + options.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            logits = model(xv) if len(xv) else None
            val_loss = float(val_loss_fn(logits, yv)) if logits is not None else total / len(xt)
            if logits is None:
                val_metric = math.nan
            elif multi_label:
                val_metric = _micro_f1((logits > 0).numpy(), y_val.astype(bool))
            else:
                val_metric = float((logits.argmax(dim=1) == yv).float().mean())
        record = {"train_loss": total / len(xt), "val_loss": val_loss, "val_metric": val_metric}
        history.append(record)
        if on_epoch is not None:
            on_epoch(epoch, record)
        if val_loss < best_loss - 1e-5:
            best_loss = val_loss
            best_epoch = epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= options.patience:
            break
    model.load_state_dict(best_state)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    return TrainedHead(
        mean=mean.astype(np.float32),
        scale=scale.astype(np.float32),
        layers=[
            (m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in linears
        ],
        multi_label=multi_label,
        epochs=epoch,
        best_epoch=best_epoch,
        history=history,
    )


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
            key=lambda t: (_f1(scores[:, j] >= t, truth[:, j].astype(bool)), -abs(t - 0.5)),
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
        "micro_f1": round(_micro_f1(predicted, truth), 4),
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


def _micro_f1(predicted: np.ndarray, truth: np.ndarray) -> float:
    tp = float((predicted & truth).sum())
    fp = float((predicted & ~truth).sum())
    fn = float((~predicted & truth).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def _f1(predicted: np.ndarray, truth: np.ndarray) -> float:
    return _micro_f1(predicted, truth)
