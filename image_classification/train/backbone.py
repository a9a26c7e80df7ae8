"""The frozen backbone: a zoo model without its ImageNet classifier, and the embedding cache.

Embedding is the slow part of training, so it runs on ONNX Runtime (the feature extractor is
exported once per weights file, like the classifiers) and every embedding is kept in a SQLite
file keyed by (backbone, image sha256, view): a second run with more images embeds only the
new ones, and renaming or moving files costs nothing.

View 0 is the image as served (the model's own preprocessing); views 1..N are light,
deterministic augmentations of it (a slightly smaller random crop, a few degrees of rotation,
a little brightness and contrast change), seeded by the image's hash so they are cached too.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sqlite3
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
from PIL import Image, ImageEnhance

from image_classification.model import InvalidImageError
from image_classification.model.engines.onnx import OPSET, default_cache_dir
from image_classification.model.preprocess import PreprocessSpec, image_to_pixels, open_image
from image_classification.model.registry import ModelSpec, get_spec
from image_classification.model.weights import resolve_weights, sha256_file

if TYPE_CHECKING:
    from torch import nn

# Bump when the feature export or the augmentations change: old cache entries are then unused.
FEATURES_VERSION = "f1"
AUGMENT_VERSION = "a1"
_BATCH = 16


@dataclass(frozen=True)
class Backbone:
    spec: ModelSpec
    weights: Path
    weights_sha256: str
    preprocess: PreprocessSpec

    @property
    def key(self) -> str:
        """Identifies the embeddings this backbone makes (for the cache)."""
        p = self.preprocess
        return (
            f"{self.spec.name}@{self.weights_sha256[:16]}/{p.version}/{p.resize}-{p.crop}"
            f"/{FEATURES_VERSION}/{AUGMENT_VERSION}"
        )


def resolve_backbone(
    name: str, weights_path: Path | None = None, *, image_size: int | None = None
) -> Backbone:
    """The backbone, at its own input size or at ``image_size`` (a smaller size embeds
    faster: 112 px takes about a quarter of the time of 224 px; fine for small, simple
    images such as digits or icons, worse for photos)."""
    spec = get_spec(name)
    weights = resolve_weights(spec, weights_path)
    preprocess = spec.preprocess
    if image_size is not None and image_size != preprocess.crop:
        preprocess = dataclasses.replace(
            preprocess,
            crop=image_size,
            resize=round(image_size * preprocess.resize / preprocess.crop),
        )
    return Backbone(spec, weights, sha256_file(weights), preprocess)


def feature_extractor(backbone: Backbone) -> tuple[nn.Module, int]:
    """The torch model with its last (ImageNet) layer replaced by the identity: pixels in,
    embedding out. Also returns the embedding's length."""
    from torch import nn

    from image_classification.model.engines.torch import build_model

    model = build_model(backbone.spec, backbone.weights)
    arch = backbone.spec.arch
    last: nn.Linear
    if backbone.spec.family == "efficientnet_lite":
        last = model._fc  # type: ignore[assignment]
        model._fc = nn.Identity()
        model._dropout = nn.Identity()
    elif arch in ("resnet50", "inception_v3"):
        last = model.fc  # type: ignore[assignment]
        model.fc = nn.Identity()
    elif arch == "densenet121":
        last = model.classifier  # type: ignore[assignment]
        model.classifier = nn.Identity()
    elif arch in ("mobilenet_v2", "vgg16"):
        head = cast(nn.Sequential, model.classifier)
        last = cast(nn.Linear, head[-1])
        head[-1] = nn.Identity()
    else:  # a zoo model added without telling us where its classifier is
        raise NotImplementedError(f"no feature extractor for {backbone.spec.name}")
    model.eval()
    return model, int(last.in_features)


def export_features_onnx(backbone: Backbone, cache_dir: Path) -> Path:
    """The feature extractor as ONNX, exported once into ``cache_dir``."""
    target = cache_dir / (
        f"{backbone.spec.name}-{backbone.weights_sha256[:16]}-features{backbone.preprocess.crop}"
        f"-opset{OPSET}"
        f"-{FEATURES_VERSION}.onnx"
    )
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    model, _ = feature_extractor(backbone)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=cache_dir)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        export_onnx(model, tmp, crop=backbone.preprocess.crop, output="embedding")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def export_onnx(model: nn.Module, path: Path, *, crop: int, output: str) -> None:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, crop, crop),),
            str(path),
            input_names=["pixels"],
            output_names=[output],
            dynamic_axes={"pixels": {0: "batch"}, output: {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


class EmbeddingCache:
    """(backbone key, image sha256, view) -> float32 vector, in one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS embeddings (backbone TEXT, sha256 TEXT, view INTEGER,"
            " vector BLOB, PRIMARY KEY (backbone, sha256, view))"
        )

    def get_many(
        self, backbone: str, keys: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], np.ndarray]:
        found: dict[tuple[str, int], np.ndarray] = {}
        wanted = set(keys)
        for sha, view, blob in self._db.execute(
            "SELECT sha256, view, vector FROM embeddings WHERE backbone = ?", (backbone,)
        ):
            if (sha, view) in wanted:
                found[(sha, view)] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, backbone: str, items: dict[tuple[str, int], np.ndarray]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)",
                [
                    (backbone, sha, view, np.asarray(v, dtype=np.float32).tobytes())
                    for (sha, view), v in items.items()
                ],
            )

    def close(self) -> None:
        self._db.close()


def default_embedding_cache() -> Path:
    return default_cache_dir() / "embeddings.sqlite"


@dataclass
class EmbeddingJob:
    sha256: str
    view: int
    load: Callable[[], bytes]
    source: str


def embed(
    backbone: Backbone,
    jobs: Sequence[EmbeddingJob],
    *,
    cache: EmbeddingCache,
    model_cache_dir: Path,
    threads: int | None,
    advance: Callable[[int], None],
    cached: Callable[[int], None] | None = None,
) -> tuple[dict[tuple[str, int], np.ndarray], dict[str, str]]:
    """Embeddings for every job (from the cache, else computed and cached) and the sources
    that failed to decode, with the reason. ``advance(n)`` reports progress."""
    keys = [(job.sha256, job.view) for job in jobs]
    found = cache.get_many(backbone.key, keys)
    todo = [job for job in jobs if (job.sha256, job.view) not in found]
    if cached is not None:
        cached(len(jobs) - len(todo))
    advance(len(jobs) - len(todo))
    failed: dict[str, str] = {}
    if not todo:
        return found, failed
    from image_classification.model.engines.onnx import OnnxRunner

    runner = OnnxRunner(
        export_features_onnx(backbone, model_cache_dir), threads=threads, outputs_probabilities=None
    )
    spec = backbone.preprocess
    try:
        for start in range(0, len(todo), _BATCH):
            batch = todo[start : start + _BATCH]
            pixels = []
            ok = []
            for job in batch:
                if job.source in failed:
                    continue
                try:
                    image, _ = open_image(job.load(), min_size=spec.resize)
                except (InvalidImageError, OSError) as exc:
                    failed[job.source] = str(exc)
                    continue
                if job.view:
                    image = augment(image, seed=f"{job.sha256}/{job.view}")
                pixels.append(image_to_pixels(image, spec))
                ok.append(job)
            if pixels:
                vectors = runner.run(np.stack(pixels))
                new = {(job.sha256, job.view): vectors[i] for i, job in enumerate(ok)}
                cache.put_many(backbone.key, new)
                found.update(new)
            advance(len(batch))
    finally:
        runner.close()
    return found, failed


def augment(image: Image.Image, *, seed: str) -> Image.Image:
    """A light, deterministic variation: crop 85-100% of each side at a random place, rotate
    by up to 8 degrees, change brightness and contrast by up to 10%. No flips (text, digits
    and many objects are not symmetric)."""
    rng = random.Random(seed)
    width, height = image.size
    scale = rng.uniform(0.85, 1.0)
    crop_w, crop_h = max(1, round(width * scale)), max(1, round(height * scale))
    left = rng.randint(0, width - crop_w)
    top = rng.randint(0, height - crop_h)
    image = image.crop((left, top, left + crop_w, top + crop_h))
    image = image.rotate(
        rng.uniform(-8, 8), resample=Image.Resampling.BILINEAR, fillcolor=_corner_color(image)
    )
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.9, 1.1))
    return ImageEnhance.Contrast(image).enhance(rng.uniform(0.9, 1.1))


def _corner_color(image: Image.Image) -> tuple[int, int, int]:
    pixel = image.getpixel((0, 0))
    if isinstance(pixel, tuple) and len(pixel) >= 3:
        return (int(pixel[0]), int(pixel[1]), int(pixel[2]))
    return (0, 0, 0)
