"""``train()``: data -> embeddings -> head -> one ONNX file + labels + sidecar + model card."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from image_classification.model.weights import sha256_file

from .backbone import (
    Backbone,
    EmbeddingCache,
    EmbeddingJob,
    default_embedding_cache,
    embed,
    resolve_backbone,
)
from .card import card_text
from .data import Dataset
from .head import (
    HeadOptions,
    Split,
    TrainedHead,
    choose_thresholds,
    multi_label_metrics,
    single_label_metrics,
    stratified_split,
)
from .model_files import (
    CARD_FILE,
    CARD_TEXT_FILE,
    LABELS_FILE,
    MODEL_FILE,
    SIDECAR_FILE,
    check_out_dir,
    export_model,
    publish,
    sidecar,
    staging_folder,
    verify,
)


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


def train(
    dataset: Dataset,
    out: Path,
    options: TrainOptions,
    *,
    console: Console | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train, evaluate and export into ``out`` (written whole or not at all); the card.
    Progress bars go to ``console`` (default stderr), unless ``quiet``."""
    started = time.perf_counter()
    check_out_dir(out, force=options.force)
    backbone = resolve_backbone(
        options.backbone, options.weights_path, image_size=options.image_size
    )
    times: dict[str, float] = {}
    with _progress(console or Console(stderr=True), quiet=quiet) as progress:
        with _timed(times, "embed"):
            embeddings = _embed_and_split(progress, backbone, dataset, options)
        with _timed(times, "train"):
            head = _train_head(progress, embeddings, options.head)
    model = _Model(
        options.name or out.name, backbone, embeddings, head, _evaluate(head, embeddings)
    )
    with staging_folder(out) as staging:
        with _timed(times, "export"):
            model_id = _write_model(staging, model, threads=options.threads)
        model_sha256 = sha256_file(staging / MODEL_FILE)
        card = _card(model, options, model_id=model_id, model_sha256=model_sha256)
        card["time_s"] = {**times, "total": round(time.perf_counter() - started, 2)}
        (staging / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", "utf-8")
        (staging / CARD_TEXT_FILE).write_text(card_text(card), "utf-8")
        publish(staging, out)
    return card


@contextmanager
def _timed(times: dict[str, float], step: str) -> Iterator[None]:
    """Adds how long the block took to ``times[step]``, in seconds (rounded as the card
    shows them)."""
    started = time.perf_counter()
    yield
    times[step] = round(time.perf_counter() - started, 2)


Vectors = dict[tuple[str, int], np.ndarray]  # (image sha256, view) -> embedding


@dataclass
class _Embedded:
    vectors: Vectors
    failed: dict[str, str]
    cached: int = 0
    total: int = 0


@dataclass
class _Embeddings:
    """The images that could be embedded, their split, and every view's embedding."""

    dataset: Dataset  # without the images that failed to decode
    split: Split
    augmented_views: list[int]  # the views beside 0 the training split has
    vectors: Vectors
    failed: dict[str, str]  # source -> why it could not be embedded
    computed: int
    cached: int

    def matrix(
        self, indices: list[int], *, augmented: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings and targets of ``dataset.examples[indices]``: view 0, and with
        ``augmented`` the augmented views."""
        views = [0, *self.augmented_views] if augmented else [0]
        return _matrix(self.dataset, indices, views, self.vectors)


@dataclass(frozen=True)
class _Evaluation:
    thresholds: list[float] | None  # multi-label: each label's decision threshold
    metrics: dict[str, Any]  # on the test split, else the validation split


@dataclass(frozen=True)
class _Model:
    """What training made, to be written out."""

    name: str
    backbone: Backbone
    embeddings: _Embeddings
    head: TrainedHead
    evaluation: _Evaluation


def _progress(console: Console, *, quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        disable=quiet,
    )


def _embed_and_split(
    progress: Progress, backbone: Backbone, dataset: Dataset, options: TrainOptions
) -> _Embeddings:
    """Embed every image (view 0), drop those that fail to decode, split the rest, then embed
    the training split's augmented views."""
    from image_classification.model.engines.onnx import default_cache_dir

    model_cache = options.model_cache_dir or default_cache_dir()
    cache = EmbeddingCache(options.embedding_cache or default_embedding_cache())
    try:
        embed_views = functools.partial(
            _embed_views,
            progress,
            backbone=backbone,
            cache=cache,
            model_cache=model_cache,
            threads=options.threads,
        )
        plain = embed_views("Embedding images", dataset, [0])
        if plain.failed:
            dataset = dataset.without(plain.failed)
        split = stratified_split(
            [example.targets for example in dataset.examples],
            multi_label=dataset.multi_label,
            val_fraction=options.val_fraction,
            test_fraction=options.test_fraction,
            seed=options.head.seed,
        )
        views = list(range(1, options.augment + 1))
        augmented = embed_views("Augmented views", dataset.subset(split.train), views)
    finally:
        cache.close()
    return _Embeddings(
        dataset=dataset,
        split=split,
        augmented_views=views,
        vectors={**plain.vectors, **augmented.vectors},
        failed=plain.failed,
        computed=plain.total + augmented.total - plain.cached - augmented.cached,
        cached=plain.cached + augmented.cached,
    )


def _embed_views(
    progress: Progress,
    title: str,
    dataset: Dataset,
    views: list[int],
    *,
    backbone: Backbone,
    cache: EmbeddingCache,
    model_cache: Path,
    threads: int | None,
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
        threads=threads,
        advance=lambda n: progress.advance(task, n),
        cached=cached,
    )
    return _Embedded(vectors, failed, from_cache[0], len(jobs))


def _train_head(progress: Progress, embeddings: _Embeddings, options: HeadOptions) -> TrainedHead:
    """The head trained on the training split's views, stopped early on the validation split."""
    from .fit import train_head  # imports torch

    multi_label = embeddings.dataset.multi_label
    metric = "micro F1" if multi_label else "accuracy"
    task = progress.add_task("Training head", total=options.epochs, status="")

    def on_epoch(epoch: int, record: dict[str, float]) -> None:
        progress.update(
            task,
            completed=epoch,
            status=f"val loss {record['val_loss']:.3f}, val {metric} {record['val_metric']:.3f}",
        )

    split = embeddings.split
    head = train_head(
        *embeddings.matrix(split.train, augmented=True),
        *embeddings.matrix(split.val),
        multi_label=multi_label,
        options=options,
        on_epoch=on_epoch,
    )
    progress.update(task, total=head.epochs, completed=head.epochs)
    return head


def _evaluate(head: TrainedHead, embeddings: _Embeddings) -> _Evaluation:
    """Multi-label thresholds chosen on the validation split; metrics on the test split (the
    validation split when there is no test split)."""
    dataset = embeddings.dataset
    x_val, y_val = embeddings.matrix(embeddings.split.val)
    x_test, y_test = embeddings.matrix(embeddings.split.test)
    eval_split, x_eval, y_eval = (
        ("test", x_test, y_test) if len(x_test) else ("validation", x_val, y_val)
    )
    scores = head.scores(x_eval)
    if not dataset.multi_label:
        metrics = single_label_metrics(scores.argmax(axis=1), y_eval, dataset.labels)
        return _Evaluation(None, {"split": eval_split, **metrics})
    thresholds = (
        choose_thresholds(head.scores(x_val), y_val) if len(x_val) else [0.5] * len(dataset.labels)
    )
    metrics = multi_label_metrics(scores >= np.asarray(thresholds), y_eval, dataset.labels)
    return _Evaluation(thresholds, {"split": eval_split, **metrics})


def _write_model(folder: Path, model: _Model, *, threads: int | None) -> str:
    """The model, its labels and its sidecar, checked as the app will serve them; its
    model_id."""
    dataset = model.embeddings.dataset
    export_model(model.backbone, model.head, folder / MODEL_FILE)
    (folder / LABELS_FILE).write_text("\n".join(dataset.labels) + "\n", "utf-8")
    served = sidecar(
        model.name,
        model.backbone.preprocess,
        multi_label=dataset.multi_label,
        thresholds=model.evaluation.thresholds,
    )
    (folder / SIDECAR_FILE).write_text(json.dumps(served, indent=2) + "\n", "utf-8")
    split = model.embeddings.split
    held_out = [dataset.examples[i] for i in (split.test or split.val)[:8]]
    sample = [(e.load(), model.embeddings.vectors[(e.sha256, 0)]) for e in held_out]
    return verify(folder / MODEL_FILE, model.head, sample, threads=threads)


def _card(
    model: _Model, options: TrainOptions, *, model_id: str, model_sha256: str
) -> dict[str, Any]:
    """The model card (card.json), times aside."""
    backbone, head = model.backbone, model.head
    dataset = model.embeddings.dataset
    return {
        "name": model.name,
        "task": "multi-label" if dataset.multi_label else "single-label",
        "labels": dataset.labels,
        "thresholds": model.evaluation.thresholds,
        "backbone": {
            "name": backbone.spec.name,
            "weights_file": backbone.weights.name,
            "weights_sha256": backbone.weights_sha256,
            "embedding_dim": len(head.mean),
            "input_size": backbone.preprocess.crop,
        },
        "data": _data_section(model.embeddings),
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
        "metrics": model.evaluation.metrics,
        "model": {
            "file": MODEL_FILE,
            "sha256": model_sha256,
            "model_id": model_id,
            "labels_file": LABELS_FILE,
            "sidecar_file": SIDECAR_FILE,
        },
        "time_s": {},
    }


def _data_section(embeddings: _Embeddings) -> dict[str, Any]:
    """What the model was trained on: origin, counts, split, embeddings and skipped files."""
    dataset = embeddings.dataset
    split = embeddings.split
    skipped = [*dataset.skipped, *embeddings.failed.items()]
    return {
        "origin": dataset.origin,
        "images": len(dataset.examples),
        "counts": dataset.counts(),
        "train_counts": dataset.subset(split.train).counts(),
        "split": {"train": len(split.train), "validation": len(split.val), "test": len(split.test)},
        "embeddings": {"computed": embeddings.computed, "cached": embeddings.cached},
        "skipped": [{"file": source, "reason": reason} for source, reason in skipped],
    }


def _matrix(
    dataset: Dataset, indices: list[int], views: list[int], vectors: Vectors
) -> tuple[np.ndarray, np.ndarray]:
    """One row per embedded (image, view); targets as class indices or a 0/1 matrix."""
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
