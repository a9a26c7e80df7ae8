"""Pipeline benchmark: HTTP upload -> bucket + journal -> consumer replicas -> DuckDB row.

    .venv/bin/python bench/pipeline.py [--images 300] [--concurrency 8] [--replicas 2]
                                       [--sizes 1mp,12mp] [--light-rate 10] [--light-images 50]
                                       [--out bench/results/pipeline.json]

Starts ``tideflow run`` of the app (local stack, a fresh state directory) and measures:

* cold start: from spawning the process to the first ``/healthz`` 200, and to
  ``consumers_ready`` (every replica has loaded its model);
* throughput, per image size: ``--images`` JPEGs uploaded over HTTP by ``--concurrency``
  clients; images/s end to end = images / (last row visible - first upload sent);
* latency from "upload accepted" (the 202 reaching the client) to "row visible", p50 and p95,
  under that load and under a light open-loop load of ``--light-rate`` 1 MP images/s;
* peak RSS of the run process and its replicas together, sampled every 100 ms.

"Row visible" is the time the event was acknowledged, read from the local stack's SQLite
journal after each phase: tideflow acknowledges right after the DuckDB commit, so this is the
commit time plus well under a millisecond, and the app is not slowed by polling while it works.
The JPEGs are sample photos (scikit-image, scikit-learn) resized to about 1 and 12 megapixels,
with light grain so that they compress like camera photos.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import platform
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from PIL import Image

from image_classification.image_ids import parse_image_id

REPO = Path(__file__).resolve().parents[1]
SAMPLES = [
    "skimage/data/chelsea.png",
    "skimage/data/coffee.png",
    "skimage/data/astronaut.png",
    "skimage/data/rocket.jpg",
    "skimage/data/motorcycle_left.png",
    "sklearn/datasets/images/china.jpg",
    "sklearn/datasets/images/flower.jpg",
]
SIZES = {"1mp": (1155, 866), "12mp": (4000, 3000)}
TARGETS = {"images_per_s_1mp": 60.0, "light_p50_ms": 150.0, "cold_start_s": 5.0}
# Every app setting explicitly, so a local .env does not change what is measured.
APP_ENV = {
    "MODEL": "efficientnet_lite0",
    "ENGINE": "onnxruntime",
    "MODEL_PATH": "",
    "TOP_K": "5",
    "MODEL_THREADS": "",
    "MAX_UPLOAD_MB": "20",
    "API_TOKEN": "",
}


@dataclasses.dataclass
class Upload:
    key: str
    generation: int
    sent: float  # time.time() when the request started
    accepted: float  # time.time() when the 202 arrived


@dataclasses.dataclass
class PhaseResult:
    name: str
    size: str
    images: int
    concurrency: int | None
    offered_per_s: float | None
    seconds: float
    images_per_s: float
    latency_p50_ms: float
    latency_p95_ms: float
    upload_p50_ms: float
    failed: int


def sample_jpegs(size: str, *, seed: int = 0) -> list[bytes]:
    """The sample photos as JPEGs of ``size`` (``1mp`` or ``12mp``)."""
    site_packages = Path(np.__file__).resolve().parents[1]
    rng = np.random.default_rng(seed)
    jpegs = []
    for relative in SAMPLES:
        with Image.open(site_packages / relative) as photo:
            resized = photo.convert("RGB").resize(SIZES[size], Image.Resampling.BICUBIC)
        pixels = np.asarray(resized, dtype=np.int16)
        grain = rng.normal(0, 3, pixels.shape).astype(np.int16)
        noisy = Image.fromarray(np.clip(pixels + grain, 0, 255).astype(np.uint8))
        out = io.BytesIO()
        noisy.save(out, format="JPEG", quality=90)
        jpegs.append(out.getvalue())
    return jpegs


class RssSampler(threading.Thread):
    """Peak summed RSS of a process and all its children."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            with contextlib.suppress(psutil.Error):
                processes = [self.root, *self.root.children(recursive=True)]
                total = 0
                for process in processes:
                    with contextlib.suppress(psutil.Error):
                        total += process.memory_info().rss
                self.peak = max(self.peak, total)


class App:
    """``tideflow run`` of the app on a free port, with a state directory of its own."""

    def __init__(self, *, home: Path, port: int, replicas: int) -> None:
        self.home = home
        self.base_url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            **APP_ENV,
            # The app then gives each replica's model cores / replicas threads.
            "NUM_REPLICAS": str(replicas),
            "TIDEFLOW_HOME": str(home),
            "PYTHONUNBUFFERED": "1",
        }
        self.log_path = home.parent / "run.log"
        self.started = time.monotonic()
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tideflow", "run", "--port", str(port)],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 120) -> tuple[float, float]:
        """Seconds from spawn to the first /healthz 200, and to consumers ready."""
        serving = None
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tideflow run exited:\n{self.log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                health = httpx.get(f"{self.base_url}/healthz", timeout=1)
                if health.status_code == 200:
                    serving = serving or time.monotonic() - self.started
                    if health.json()["consumers_ready"]:
                        return serving, time.monotonic() - self.started
            time.sleep(0.01)
        raise RuntimeError(f"not ready after {timeout}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @contextlib.contextmanager
    def journal(self) -> Iterator[sqlite3.Connection]:
        path = self.home / "journal" / "image-bucket.sqlite3"
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            yield db
        finally:
            db.close()

    def finished(self, uploads: list[Upload]) -> dict[tuple[str, int], tuple[str, float]]:
        """(state, time of last change) of the uploads' events that are done or dead."""
        wanted = {(u.key, u.generation) for u in uploads}
        with self.journal() as db:
            rows = db.execute(
                "SELECT key, generation, state, updated FROM events WHERE state IN ('done', 'dead')"
            ).fetchall()
        return {(k, g): (state, updated) for k, g, state, updated in rows if (k, g) in wanted}

    def wait_finished(self, uploads: list[Upload], timeout: float = 600) -> dict[Any, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            finished = self.finished(uploads)
            if len(finished) == len(uploads):
                return finished
            time.sleep(0.25)
        raise RuntimeError(f"only {len(self.finished(uploads))}/{len(uploads)} done in time")


def send(client: httpx.Client, data: bytes, name: str) -> Upload:
    sent = time.time()
    response = client.post("/image-upload", files={"image_file": (name, data, "image/jpeg")})
    accepted = time.time()
    response.raise_for_status()
    key, generation = parse_image_id(response.json()["image_id"])
    return Upload(key=key, generation=generation, sent=sent, accepted=accepted)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summarise(
    app: App,
    uploads: list[Upload],
    *,
    name: str,
    size: str,
    concurrency: int | None,
    offered: float | None,
) -> PhaseResult:
    finished = app.wait_finished(uploads)
    done = [u for u in uploads if finished[(u.key, u.generation)][0] == "done"]
    latencies = [(finished[(u.key, u.generation)][1] - u.accepted) * 1000 for u in done]
    start = min(u.sent for u in uploads)
    end = max(updated for _, updated in finished.values())
    return PhaseResult(
        name=name,
        size=size,
        images=len(uploads),
        concurrency=concurrency,
        offered_per_s=offered,
        seconds=round(end - start, 3),
        images_per_s=round(len(done) / (end - start), 1),
        latency_p50_ms=round(percentile(latencies, 0.5), 1),
        latency_p95_ms=round(percentile(latencies, 0.95), 1),
        upload_p50_ms=round(statistics.median((u.accepted - u.sent) * 1000 for u in uploads), 1),
        failed=len(uploads) - len(done),
    )


def throughput_phase(app: App, *, size: str, images: int, concurrency: int) -> PhaseResult:
    jpegs = sample_jpegs(size)
    limits = httpx.Limits(max_connections=concurrency)
    with (
        httpx.Client(base_url=app.base_url, timeout=120, limits=limits) as client,
        ThreadPoolExecutor(concurrency) as pool,
    ):
        uploads = list(
            pool.map(
                lambda i: send(client, jpegs[i % len(jpegs)], f"{size}-{i}.jpg"),
                range(images),
            )
        )
    return summarise(
        app, uploads, name="throughput", size=size, concurrency=concurrency, offered=None
    )


def light_phase(app: App, *, rate: float, images: int) -> PhaseResult:
    """Open loop: upload i is sent at start + i / rate, whatever happened to the others."""
    jpegs = sample_jpegs("1mp", seed=1)
    start = time.monotonic() + 0.2

    def scheduled(index: int, client: httpx.Client) -> Upload:
        time.sleep(max(0.0, start + index / rate - time.monotonic()))
        return send(client, jpegs[index % len(jpegs)], f"light-{index}.jpg")

    with (
        httpx.Client(base_url=app.base_url, timeout=120) as client,
        ThreadPoolExecutor(16) as pool,
    ):
        uploads = list(pool.map(lambda i: scheduled(i, client), range(images)))
    return summarise(app, uploads, name="light load", size="1mp", concurrency=None, offered=rate)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def print_report(report: dict[str, Any]) -> None:
    start = report["cold_start"]
    print(f"\nmachine: {report['machine']['cpus']} CPUs, {report['machine']['processor']}")
    print(f"replicas: {report['replicas']}, model threads each: {report['model_threads']}")
    print(
        f"cold start: /healthz 200 after {start['serving_s']:.2f} s, "
        f"consumers ready after {start['consumers_ready_s']:.2f} s"
    )
    header = (
        f"{'phase':<11} {'size':<5} {'images':>6} {'conc':>5} {'offered/s':>9} "
        f"{'images/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'upload p50':>10} {'failed':>6}"
    )
    print(header)
    print("-" * len(header))
    for phase in report["phases"]:
        offered = f"{phase['offered_per_s']:.0f}" if phase["offered_per_s"] else "-"
        print(
            f"{phase['name']:<11} {phase['size']:<5} {phase['images']:>6} "
            f"{phase['concurrency'] or '-':>5} {offered:>9} {phase['images_per_s']:>9.1f} "
            f"{phase['latency_p50_ms']:>8.1f} {phase['latency_p95_ms']:>8.1f} "
            f"{phase['upload_p50_ms']:>10.1f} {phase['failed']:>6}"
        )
    print(f"peak RSS, run process + replicas: {report['peak_rss_mb']:.0f} MB")
    print(
        "targets: "
        + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in report["targets_met"].items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--replicas", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sizes", default="1mp,12mp")
    parser.add_argument("--light-rate", type=float, default=10.0)
    parser.add_argument("--light-images", type=int, default=50)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pipeline.json")
    args = parser.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = set(sizes) - set(SIZES)
    if unknown:
        parser.error(f"unknown sizes {sorted(unknown)}; use {', '.join(SIZES)}")

    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as scratch:
        app = App(home=Path(scratch) / "home", port=free_port(), replicas=args.replicas)
        sampler = RssSampler(app.process.pid)
        sampler.start()
        try:
            serving, ready = app.wait_ready()
            phases = [
                throughput_phase(app, size=size, images=args.images, concurrency=args.concurrency)
                for size in sizes
            ]
            if args.light_images:
                phases.append(light_phase(app, rate=args.light_rate, images=args.light_images))
            total = httpx.get(f"{app.base_url}/api/results", params={"limit": 1}).json()["total"]
        finally:
            sampler.stop.set()
            app.stop()

    expected = sum(phase.images for phase in phases)
    if total != expected:
        raise SystemExit(f"the results API lists {total} rows, expected {expected}")
    throughput_1mp = next((p for p in phases if p.name == "throughput" and p.size == "1mp"), None)
    light = next((p for p in phases if p.name == "light load"), None)
    targets_met = {"cold start to serving < 5 s": serving < TARGETS["cold_start_s"]}
    if throughput_1mp:
        targets_met[">= 60 images/s (1 MP)"] = (
            throughput_1mp.images_per_s >= TARGETS["images_per_s_1mp"]
        )
    if light:
        targets_met["light-load p50 < 150 ms"] = light.latency_p50_ms < TARGETS["light_p50_ms"]
    cpus = len(os.sched_getaffinity(0))
    report = {
        "machine": {
            "cpus": cpus,
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "replicas": args.replicas,
        "model_threads": max(1, cpus // args.replicas),
        "cold_start": {"serving_s": round(serving, 3), "consumers_ready_s": round(ready, 3)},
        "phases": [dataclasses.asdict(phase) for phase in phases],
        "peak_rss_mb": round(sampler.peak / 2**20, 1),
        "targets_met": targets_met,
    }
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
