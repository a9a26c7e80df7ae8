"""``train()``: data -> embeddings -> head -> one ONNX file + labels + sidecar + model card."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from image_classification.model.weights import sha256_file

from . import data as data_module
from .backbone import (
    Backbone,
    EmbeddingCache,
    EmbeddingJob,
    default_embedding_cache,
    embed,
    export_onnx,
    feature_extractor,
    resolve_backbone,
)
from .card import card_text, render_card
from .data import DataError, Dataset
from .head import (
    HeadOptions,
    TrainedHead,
    choose_thresholds,
    multi_label_metrics,
    single_label_metrics,
    stratified_split,
    train_head,
)

MODEL_FILE = "model.onnx"
LABELS_FILE = "model.txt"
SIDECAR_FILE = "model.json"
CARD_FILE = "card.json"
CARD_TEXT_FILE = "card.txt"


@dataclass
class TrainOptions:
    backbone: str = "efficientnet_lite0"
    weights_path: Path | None = None
    image_size: int | None = None
    name: str | None = None
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    augment: int = 1
    head: HeadOptions = field(default_factory=HeadOptions)
    threads: int | None = None
    embedding_cache: Path | None = None
    model_cache_dir: Path | None = None
    force: bool = False


def check_out_dir(out: Path, *, force: bool) -> None:
    """``out`` may be written: it is absent or empty, or (with ``force``) a previous model's
    folder; ``--force`` never deletes a folder of something else."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; give a folder for the model.")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / CARD_FILE).is_file():
        raise DataError(
            f"--out {out} holds files but no model ({CARD_FILE}); --force replaces only a "
            "folder written by this command. Give another --out, or empty that folder."
        )
    if not force:
        raise DataError(f"--out {out} already holds a model; pass --force to replace it.")


def train(
    dataset: Dataset, out: Path, options: TrainOptions, *, console: Console | None = None
) -> dict[str, Any]:
    """Train, evaluate and export into ``out`` (written whole or not at all); the card."""
    console = console or Console(stderr=True)
    started = time.perf_counter()
    check_out_dir(out, force=options.force)
    backbone = resolve_backbone(
        options.backbone, options.weights_path, image_size=options.image_size
    )
    from image_classification.model.engines.onnx import default_cache_dir

    model_cache = options.model_cache_dir or default_cache_dir()
    cache = EmbeddingCache(options.embedding_cache or default_embedding_cache())
    try:
        with _progress(console) as progress:
            t0 = time.perf_counter()
            plain = _embed_views(
                progress, "Embedding images", backbone, dataset, [0], cache, model_cache, options
            )
            failed = plain.failed
            if failed:
                dataset = _without(dataset, failed)
            targets = [example.targets for example in dataset.examples]
            split = stratified_split(
                targets,
                multi_label=dataset.multi_label,
                val_fraction=options.val_fraction,
                test_fraction=options.test_fraction,
                seed=options.head.seed,
            )
            train_set = Dataset(
                dataset.labels,
                [dataset.examples[i] for i in split.train],
                dataset.multi_label,
                dataset.origin,
            )
            views = list(range(1, options.augment + 1))
            augmented = _embed_views(
                progress, "Augmented views", backbone, train_set, views, cache, model_cache, options
            )
            embed_s = time.perf_counter() - t0

            vectors = {**plain.vectors, **augmented.vectors}
            x_train, y_train = _matrix(dataset, split.train, [0, *views], vectors, augmented.failed)
            x_val, y_val = _matrix(dataset, split.val, [0], vectors, {})
            x_test, y_test = _matrix(dataset, split.test, [0], vectors, {})

            t1 = time.perf_counter()
            task = progress.add_task("Training head", total=options.head.epochs, status="")

            def on_epoch(epoch: int, record: dict[str, float]) -> None:
                metric = "micro F1" if dataset.multi_label else "accuracy"
                progress.update(
                    task,
                    completed=epoch,
                    status=f"val loss {record['val_loss']:.3f}, "
                    f"val {metric} {record['val_metric']:.3f}",
                )

            head = train_head(
                x_train,
                y_train,
                x_val,
                y_val,
                multi_label=dataset.multi_label,
                options=options.head,
                on_epoch=on_epoch,
            )
            progress.update(task, total=head.epochs, completed=head.epochs)
            train_s = time.perf_counter() - t1
    finally:
        cache.close()

    thresholds = None
    if dataset.multi_label:
        thresholds = (
            choose_thresholds(head.scores(x_val), y_val)
            if len(x_val)
            else [0.5] * len(dataset.labels)
        )
    eval_split, x_eval, y_eval = (
        ("test", x_test, y_test) if len(x_test) else ("validation", x_val, y_val)
    )
    scores = head.scores(x_eval)
    if dataset.multi_label:
        assert thresholds is not None
        metrics = multi_label_metrics(scores >= np.asarray(thresholds), y_eval, dataset.labels)
    else:
        metrics = single_label_metrics(scores.argmax(axis=1), y_eval, dataset.labels)
    metrics = {"split": eval_split, **metrics}

    name = options.name or out.name
    t2 = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    staging.chmod(0o755)
    try:
        model_path = staging / MODEL_FILE
        _export(backbone, head, model_path)
        (staging / LABELS_FILE).write_text("\n".join(dataset.labels) + "\n", "utf-8")
        preprocess = backbone.preprocess
        sidecar = {
            "name": name,
            "input_size": preprocess.crop,
            "resize": preprocess.resize,
            "mean": list(preprocess.mean),
            "std": list(preprocess.std),
            "layout": "NCHW",
            "activation": "none",
            "multi_label": dataset.multi_label,
        }
        if thresholds is not None:
            sidecar["thresholds"] = thresholds
        (staging / SIDECAR_FILE).write_text(json.dumps(sidecar, indent=2) + "\n", "utf-8")
        model_id = _verify(model_path, dataset, split.test or split.val, head, vectors, options)
        export_s = time.perf_counter() - t2
        card: dict[str, Any] = {
            "name": name,
            "task": "multi-label" if dataset.multi_label else "single-label",
            "labels": dataset.labels,
            "thresholds": thresholds,
            "backbone": {
                "name": backbone.spec.name,
                "weights_file": backbone.weights.name,
                "weights_sha256": backbone.weights_sha256,
                "embedding_dim": int(x_train.shape[1]),
                "input_size": backbone.preprocess.crop,
            },
            "data": {
                "origin": dataset.origin,
                "images": len(dataset.examples),
                "counts": dataset.counts(),
                "train_counts": _counts(dataset, split.train),
                "split": {
                    "train": len(split.train),
                    "validation": len(split.val),
                    "test": len(split.test),
                },
                "embeddings": {
                    "computed": plain.total + augmented.total - plain.cached - augmented.cached,
                    "cached": plain.cached + augmented.cached,
                },
                "skipped": [
                    {"file": s, "reason": r} for s, r in [*dataset.skipped, *failed.items()]
                ],
            },
            "training": {
                "seed": options.head.seed,
                "epochs": head.epochs,
                "best_epoch": head.best_epoch,
                "augmented_views": options.augment,
                "learning_rate": options.head.learning_rate,
                "weight_decay": options.head.weight_decay,
                "batch_size": options.head.batch_size,
                "hidden": options.head.hidden,
                "dropout": options.head.dropout,
                "patience": options.head.patience,
                "class_balancing": "pos_weight" if dataset.multi_label else "inverse frequency",
            },
            "metrics": metrics,
            "model": {
                "file": MODEL_FILE,
                "sha256": sha256_file(model_path),
                "model_id": model_id,
                "labels_file": LABELS_FILE,
                "sidecar_file": SIDECAR_FILE,
            },
            "time_s": {},
        }
        card["time_s"] = {
            "embed": round(embed_s, 2),
            "train": round(train_s, 2),
            "export": round(export_s, 2),
            "total": round(time.perf_counter() - started, 2),
        }
        (staging / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", "utf-8")
        (staging / CARD_TEXT_FILE).write_text(card_text(card), "utf-8")
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return card


def print_card(card: dict[str, Any], console: Console) -> None:
    console.print(render_card(card))


@dataclass
class _Embedded:
    vectors: dict[tuple[str, int], np.ndarray]
    failed: dict[str, str]
    cached: int = 0
    total: int = 0


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
    )


def _embed_views(
    progress: Progress,
    title: str,
    backbone: Backbone,
    dataset: Dataset,
    views: list[int],
    cache: EmbeddingCache,
    model_cache: Path,
    options: TrainOptions,
) -> _Embedded:
    jobs = [
        EmbeddingJob(example.sha256, view, example.load, example.source)
        for example in dataset.examples
        for view in views
    ]
    if not jobs:
        return _Embedded({}, {})
    task = progress.add_task(title, total=len(jobs), status="")
    from_cache = [0]

    def cached(n: int) -> None:
        from_cache[0] = n
        progress.update(task, status=f"{n} cached")

    vectors, failed = embed(
        backbone,
        jobs,
        cache=cache,
        model_cache_dir=model_cache,
        threads=options.threads,
        advance=lambda n: progress.advance(task, n),
        cached=cached,
    )
    return _Embedded(vectors, failed, from_cache[0], len(jobs))


def _without(dataset: Dataset, failed: dict[str, str]) -> Dataset:
    kept = [e for e in dataset.examples if e.source not in failed]
    result = Dataset(dataset.labels, kept, dataset.multi_label, dataset.origin, [*dataset.skipped])
    data_module._check(result)
    return result


def _matrix(
    dataset: Dataset,
    indices: list[int],
    views: list[int],
    vectors: dict[tuple[str, int], np.ndarray],
    failed: dict[str, str],
) -> tuple[np.ndarray, np.ndarray]:
    xs = []
    ys: list[Any] = []
    n = len(dataset.labels)
    for i in indices:
        example = dataset.examples[i]
        for view in views:
            vector = vectors.get((example.sha256, view))
            if vector is None:
                continue
            xs.append(vector)
            if dataset.multi_label:
                row = np.zeros(n, dtype=np.float32)
                row[list(example.targets)] = 1
                ys.append(row)
            else:
                ys.append(example.targets[0])
    if not xs:
        dim = len(next(iter(vectors.values())))
        empty_y = np.zeros((0, n), dtype=np.float32) if dataset.multi_label else np.zeros(0, int)
        return np.zeros((0, dim), dtype=np.float32), empty_y
    return np.stack(xs).astype(np.float32), np.asarray(ys)


def _counts(dataset: Dataset, indices: list[int]) -> dict[str, int]:
    counts = dict.fromkeys(dataset.labels, 0)
    for i in indices:
        for t in dataset.examples[i].targets:
            counts[dataset.labels[t]] += 1
    return counts


def _export(backbone: Backbone, head: TrainedHead, path: Path) -> None:
    """Backbone + standardization + head + softmax/sigmoid as ONE ONNX graph."""
    import torch
    from torch import nn

    features, _ = feature_extractor(backbone)

    class Exported(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = features
            self.register_buffer("mean", torch.from_numpy(head.mean))
            self.register_buffer("scale", torch.from_numpy(head.scale))
            self.layers = nn.ModuleList()
            for weight, bias in head.layers:
                layer = nn.Linear(weight.shape[1], weight.shape[0])
                layer.weight.data = torch.from_numpy(weight)
                layer.bias.data = torch.from_numpy(bias)
                self.layers.append(layer)

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            h = (self.features(pixels) - self.mean) / self.scale
            for i, layer in enumerate(self.layers):
                h = layer(h)
                if i < len(self.layers) - 1:
                    h = torch.relu(h)
            return torch.sigmoid(h) if head.multi_label else torch.softmax(h, dim=1)

    model = Exported().eval()
    export_onnx(model, path, crop=backbone.preprocess.crop, output="probabilities")


def _verify(
    model_path: Path,
    dataset: Dataset,
    indices: list[int],
    head: TrainedHead,
    vectors: dict[tuple[str, int], np.ndarray],
    options: TrainOptions,
) -> str:
    """Serve the exported file as the app will and check it agrees with the trained head on a
    few held-out images; its model_id."""
    from image_classification.model import load_classifier
    from image_classification.model.preprocess import decode_image

    classifier = load_classifier(model_path, threads=options.threads)
    try:
        sample = [dataset.examples[i] for i in indices[:8]]
        if sample:
            pixels = np.stack(
                [decode_image(e.load(), classifier.preprocess).pixels for e in sample]
            )
            served = classifier.probabilities(pixels)
            expected = head.scores(np.stack([vectors[(e.sha256, 0)] for e in sample]))
            worst = float(np.abs(served - expected).max())
            if worst > 2e-3:
                raise RuntimeError(
                    f"the exported model disagrees with the trained head by {worst:.4f}; "
                    "this is a bug, please report it"
                )
        return classifier.model_id
    finally:
        classifier.close()


def _publish(staging: Path, out: Path) -> None:
    """Move the finished folder into place; an existing one (with --force) is replaced."""
    check_out_dir(out, force=True)  # again: it may have changed while training
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)
