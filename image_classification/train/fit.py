"""Fitting the head with torch, on the CPU: standardized embeddings -> one linear layer
(optionally a hidden layer), AdamW, a class-balanced loss (inverse-frequency class weights for
softmax, ``pos_weight`` for sigmoid), dropout on the embedding as a light regularizer, early
stopping on the validation loss (the best epoch's weights are kept).

Imported only when a head is trained: importing torch costs seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .head import HeadOptions, TrainedHead, micro_f1

EpochCallback = Callable[[int, dict[str, float]], None]


def train_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    multi_label: bool,
    options: HeadOptions,
    on_epoch: EpochCallback | None = None,
) -> TrainedHead:
    """The head for embeddings ``x``; ``y`` is class indices (single-label) or a 0/1 matrix
    (multi-label). ``on_epoch(epoch, record)`` reports the losses and the validation metric."""
    with _one_thread():
        torch.manual_seed(options.seed)
        mean, scale = _standardization(x_train)
        xt = torch.from_numpy(((x_train - mean) / scale).astype(np.float32))
        xv = torch.from_numpy(((x_val - mean) / scale).astype(np.float32))
        num_outputs = (
            y_train.shape[1] if multi_label else int(max(y_train.max(), y_val.max(initial=0)) + 1)
        )
        model = _network(xt.shape[1], num_outputs, options)
        loss = _Loss.for_targets(y_train, y_val, multi_label=multi_label, outputs=num_outputs)
        epochs, best_epoch, history = _fit(model, xt, xv, loss, options, on_epoch)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    return TrainedHead(
        mean=mean.astype(np.float32),
        scale=scale.astype(np.float32),
        layers=[
            (m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in linears
        ],
        multi_label=multi_label,
        epochs=epochs,
        best_epoch=best_epoch,
        history=history,
    )


@contextmanager
def _one_thread() -> Iterator[None]:
    # Small matrices: one thread is as fast and does not fight the machine's other work.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _standardization(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each feature's mean and scale in training."""
    std = x_train.std(axis=0)
    # Features that barely vary in training (dead units) must not blow up at inference: floor
    # their scale at a tenth of the typical feature's.
    return x_train.mean(axis=0), np.maximum(std, 0.1 * float(np.median(std)) + 1e-6)


def _network(dim: int, outputs: int, options: HeadOptions) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Dropout(options.dropout)]
    if options.hidden:
        layers += [nn.Linear(dim, options.hidden), nn.ReLU(), nn.Dropout(options.dropout)]
        dim = options.hidden
    layers.append(nn.Linear(dim, outputs))
    return nn.Sequential(*layers)


@dataclass
class _Loss:
    """The targets as tensors, the class-balanced training loss and the plain validation loss."""

    multi_label: bool
    train_targets: torch.Tensor
    val_targets: torch.Tensor
    train: nn.Module
    val: nn.Module

    @classmethod
    def for_targets(
        cls, y_train: np.ndarray, y_val: np.ndarray, *, multi_label: bool, outputs: int
    ) -> _Loss:
        if multi_label:
            yt = torch.from_numpy(y_train.astype(np.float32))
            yv = torch.from_numpy(y_val.astype(np.float32))
            positives = yt.sum(dim=0)
            negatives = len(yt) - positives
            pos_weight = (negatives / positives.clamp(min=1)).clamp(1.0, 10.0)
            return cls(
                True, yt, yv, nn.BCEWithLogitsLoss(pos_weight=pos_weight), nn.BCEWithLogitsLoss()
            )
        yt = torch.from_numpy(y_train.astype(np.int64))
        yv = torch.from_numpy(y_val.astype(np.int64))
        counts = torch.bincount(yt, minlength=outputs).float()
        weights = counts.sum() / (outputs * counts.clamp(min=1))
        return cls(False, yt, yv, nn.CrossEntropyLoss(weight=weights), nn.CrossEntropyLoss())

    def metric(self, logits: torch.Tensor) -> float:
        """Validation micro F1 (multi-label) or accuracy (single-label)."""
        if self.multi_label:
            return micro_f1((logits > 0).numpy(), self.val_targets.numpy().astype(bool))
        return float((logits.argmax(dim=1) == self.val_targets).float().mean())


def _fit(
    model: nn.Sequential,
    xt: torch.Tensor,
    xv: torch.Tensor,
    loss: _Loss,
    options: HeadOptions,
    on_epoch: EpochCallback | None,
) -> tuple[int, int, list[dict[str, float]]]:
    """Train until the validation loss stops improving; loads the best epoch's weights into
    ``model``. The epochs run, the best one and each epoch's record."""
    generator = torch.Generator().manual_seed(options.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay
    )
    best_loss = math.inf
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    best_epoch = 0
    history: list[dict[str, float]] = []
    epoch = 0
    for epoch in range(1, options.epochs + 1):
        train_loss = _train_epoch(model, xt, loss, optimizer, options.batch_size, generator)
        record = {"train_loss": train_loss, **_validate(model, xv, loss, train_loss)}
        history.append(record)
        if on_epoch is not None:
            on_epoch(epoch, record)
        if record["val_loss"] < best_loss - 1e-5:
            best_loss = record["val_loss"]
            best_epoch = epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= options.patience:
            break
    model.load_state_dict(best_state)
    return epoch, best_epoch, history


def _train_epoch(
    model: nn.Sequential,
    xt: torch.Tensor,
    loss: _Loss,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    generator: torch.Generator,
) -> float:
    """One pass over the training set in shuffled batches; the mean training loss."""
    model.train()
    order = torch.randperm(len(xt), generator=generator)
    total = 0.0
    for start in range(0, len(xt), batch_size):
        idx = order[start : start + batch_size]
        optimizer.zero_grad()
        batch_loss = loss.train(model(xt[idx]), loss.train_targets[idx])
        batch_loss.backward()
        optimizer.step()
        total += batch_loss.item() * len(idx)
    return total / len(xt)


def _validate(
    model: nn.Sequential, xv: torch.Tensor, loss: _Loss, train_loss: float
) -> dict[str, float]:
    """The validation loss and metric (with no validation set: the training loss, no metric)."""
    model.eval()
    if not len(xv):
        return {"val_loss": train_loss, "val_metric": math.nan}
    with torch.no_grad():
        logits = model(xv)
        return {
            "val_loss": float(loss.val(logits, loss.val_targets)),
            "val_metric": loss.metric(logits),
        }
