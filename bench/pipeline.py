"""Pipeline benchmark: HTTP upload -> bucket + journal -> consumer replicas -> DuckDB row.

    .venv/bin/python bench/pipeline.py [--images 300] [--concurrency 8] [--replicas 2]
                                       [--sizes 1mp,12mp] [--light-rate 10] [--light-images 50]
                                       [--batch-sizes 1,4] [--mixed-seconds 20]
                                       [--bare-seconds 5] [--out bench/results/pipeline.json]

First the bare classifier (the same model, as many threads as the app's replicas have in
all, no app around it): images/s classifying the benchmark's own 1 MP JPEGs from bytes, and
on ready tensors, batches of 8. Then, for each of ``--batch-sizes`` (the app's BATCH_SIZE: 1
is one image at a time, the app before adaptive batching), starts ``tideflow run`` of the
app (local stack, a fresh state directory) and measures:

* cold start: from spawning the process to the first ``/healthz`` 200, and to
  ``consumers_ready`` (every replica has loaded its model);
* throughput, per image size: ``--images`` JPEGs uploaded over HTTP by ``--concurrency``
  clients; images/s end to end = images / (last row visible - first upload sent);
* latency from "upload accepted" (the 202 reaching the client) to "row visible", p50 and p95,
  under that load and under a light open-loop load of ``--light-rate`` 1 MP images/s;
* upload latency while the consumers are saturated: ``--mixed-seconds`` of 32 clients, half
  uploading 1 MP JPEGs, half reading ``/api/results``, as fast as they are answered;
* peak RSS of the run process and its replicas together, sampled every 100 ms.

End-to-end images/s are also reported as a ratio of the bare classifier's, and the load
average is printed before and after (this machine class is shared: compare within one run).

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
TARGETS = {
    "share_of_bare_1mp": 0.65,
    "images_per_s_12mp": 50.0,
    "light_p50_ms": 25.0,
    "cold_start_s": 1.0,
    "peak_rss_mb": 600.0,
    "mixed_upload_p99_ms": 500.0,
}
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
    upload_p99_ms: float
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

    def __init__(self, *, home: Path, port: int, replicas: int, batch_size: int) -> None:
        self.home = home
        self.base_url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            **APP_ENV,
            "BATCH_SIZE": str(batch_size),
            # The app then gives each replica's model cores / replicas threads.
            "NUM_REPLICAS": str(replicas),
            "TIDEFLOW_HOME": str(home),
            "PYTHONUNBUFFERED": "1",
        }
        self.log_path = home.parent / f"run-{batch_size}.log"
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
    key, version = parse_image_id(response.json()["image_id"])
    # On the local stack the version is the journal's integer generation.
    return Upload(key=key, generation=int(version), sent=sent, accepted=accepted)


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
    upload_ms = [(u.accepted - u.sent) * 1000 for u in uploads]
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
        upload_p50_ms=round(statistics.median(upload_ms), 1),
        upload_p99_ms=round(percentile(upload_ms, 0.99), 1),
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


def mixed_phase(app: App, *, seconds: float, clients: int = 32) -> PhaseResult:
    """Closed loop for ``seconds``: half the clients upload, half read the results."""
    jpegs = sample_jpegs("1mp", seed=2)
    deadline = time.monotonic() + seconds
    uploads: list[Upload] = []

    def client_loop(index: int, client: httpx.Client) -> None:
        count = 0
        while time.monotonic() < deadline:
            if index % 2:
                client.get("/api/results", params={"limit": 20}).raise_for_status()
            else:
                name = f"mixed-{index}-{count}.jpg"
                uploads.append(send(client, jpegs[count % len(jpegs)], name))
            count += 1

    limits = httpx.Limits(max_connections=clients)
    with (
        httpx.Client(base_url=app.base_url, timeout=120, limits=limits) as client,
        ThreadPoolExecutor(clients) as pool,
    ):
        list(pool.map(lambda i: client_loop(i, client), range(clients)))
    return summarise(app, uploads, name="mixed", size="1mp", concurrency=clients, offered=None)


def bare_classifier(*, threads: int, seconds: float) -> dict[str, float]:
    """Images/s of the model alone, batches of 8: from the benchmark's 1 MP JPEG bytes, and
    from ready tensors (in this process, before the app starts)."""
    from image_classification.model import load_classifier

    classifier = load_classifier(APP_ENV["MODEL"], APP_ENV["ENGINE"], threads=threads)
    jpegs = (sample_jpegs("1mp") * 2)[:8]
    crop = classifier.preprocess.crop
    tensors = np.random.default_rng(0).normal(size=(8, 3, crop, crop)).astype(np.float32)

    def rate(call: Any) -> float:
        call()  # warm up
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            call()
            done += 8
        return round(done / (time.perf_counter() - started), 1)

    try:
        return {
            "from_jpeg_per_s": rate(lambda: classifier.classify_batch(jpegs)),
            "from_tensors_per_s": rate(lambda: classifier.probabilities(tensors)),
        }
    finally:
        classifier.close()


def run_app(args: argparse.Namespace, sizes: list[str], batch_size: int) -> dict[str, Any]:
    """Every phase against one fresh ``tideflow run`` with BATCH_SIZE=``batch_size``."""
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as scratch:
        app = App(
            home=Path(scratch) / "home",
            port=free_port(),
            replicas=args.replicas,
            batch_size=batch_size,
        )
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
            if args.mixed_seconds:
                phases.append(mixed_phase(app, seconds=args.mixed_seconds))
            total = httpx.get(f"{app.base_url}/api/results", params={"limit": 1}).json()["total"]
        finally:
            sampler.stop.set()
            app.stop()
    expected = sum(phase.images for phase in phases)
    if total != expected:
        raise SystemExit(f"the results API lists {total} rows, expected {expected}")
    return {
        "batch_size": batch_size,
        "cold_start": {"serving_s": round(serving, 3), "consumers_ready_s": round(ready, 3)},
        "phases": [dataclasses.asdict(phase) for phase in phases],
        "peak_rss_mb": round(sampler.peak / 2**20, 1),
    }


def targets_met(run: dict[str, Any], bare: dict[str, float]) -> dict[str, bool]:
    phases = {(p["name"], p["size"]): p for p in run["phases"]}
    met = {
        "cold start to serving < 1 s": run["cold_start"]["serving_s"] < TARGETS["cold_start_s"],
        "peak RSS <= 600 MB": run["peak_rss_mb"] <= TARGETS["peak_rss_mb"],
    }
    if ("throughput", "1mp") in phases:
        share = phases["throughput", "1mp"]["images_per_s"] / bare["from_tensors_per_s"]
        met[">= 65% of the bare classifier (1 MP)"] = share >= TARGETS["share_of_bare_1mp"]
    if ("throughput", "12mp") in phases:
        rate = phases["throughput", "12mp"]["images_per_s"]
        met[">= 50 images/s (12 MP)"] = rate >= TARGETS["images_per_s_12mp"]
    if ("light load", "1mp") in phases:
        p50 = phases["light load", "1mp"]["latency_p50_ms"]
        met["light-load p50 <= 25 ms"] = p50 <= TARGETS["light_p50_ms"]
    if ("mixed", "1mp") in phases:
        p99 = phases["mixed", "1mp"]["upload_p99_ms"]
        met["mixed upload p99 <= 500 ms"] = p99 <= TARGETS["mixed_upload_p99_ms"]
    return met


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def print_report(report: dict[str, Any]) -> None:
    bare = report["bare_classifier"]
    print(f"\nmachine: {report['machine']['cpus']} CPUs, {report['machine']['processor']}")
    print(f"load average before: {report['load_before']}, after: {report['load_after']}")
    print(f"replicas: {report['replicas']}, model threads each: {report['model_threads']}")
    print(
        f"bare classifier ({report['model_threads'] * report['replicas']} threads, batches of "
        f"8): {bare['from_tensors_per_s']} images/s on tensors, {bare['from_jpeg_per_s']} "
        "from 1 MP JPEG bytes"
    )
    header = (
        f"{'batch':>5} {'phase':<11} {'size':<5} {'images':>6} {'conc':>5} {'offered/s':>9} "
        f"{'images/s':>9} {'of bare':>7} {'p50 ms':>8} {'p95 ms':>8} {'upl p50':>8} "
        f"{'upl p99':>8} {'failed':>6}"
    )
    print(header)
    print("-" * len(header))
    for run in report["runs"]:
        for phase in run["phases"]:
            offered = f"{phase['offered_per_s']:.0f}" if phase["offered_per_s"] else "-"
            share = phase["images_per_s"] / bare["from_tensors_per_s"]
            print(
                f"{run['batch_size']:>5} {phase['name']:<11} {phase['size']:<5} "
                f"{phase['images']:>6} {phase['concurrency'] or '-':>5} {offered:>9} "
                f"{phase['images_per_s']:>9.1f} {share:>7.0%} {phase['latency_p50_ms']:>8.1f} "
                f"{phase['latency_p95_ms']:>8.1f} {phase['upload_p50_ms']:>8.1f} "
                f"{phase['upload_p99_ms']:>8.1f} {phase['failed']:>6}"
            )
    for run in report["runs"]:
        start = run["cold_start"]
        print(
            f"batch {run['batch_size']}: /healthz 200 after {start['serving_s']:.2f} s, "
            f"consumers ready after {start['consumers_ready_s']:.2f} s, peak RSS (run process "
            f"+ replicas) {run['peak_rss_mb']:.0f} MB; targets: "
            + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in run["targets_met"].items())
        )
    if len(report["runs"]) > 1:
        first, last = report["runs"][0], report["runs"][-1]
        for before, after in zip(first["phases"], last["phases"], strict=True):
            ratio = after["images_per_s"] / before["images_per_s"]
            print(
                f"{before['name']} {before['size']}: batch {last['batch_size']} / batch "
                f"{first['batch_size']} = {ratio:.2f}x images/s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--replicas", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sizes", default="1mp,12mp")
    parser.add_argument("--light-rate", type=float, default=10.0)
    parser.add_argument("--light-images", type=int, default=50)
    parser.add_argument("--batch-sizes", default="1,4", help="the app's BATCH_SIZE, in turn")
    parser.add_argument("--mixed-seconds", type=float, default=20.0)
    parser.add_argument("--bare-seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "pipeline.json")
    args = parser.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = set(sizes) - set(SIZES)
    if unknown:
        parser.error(f"unknown sizes {sorted(unknown)}; use {', '.join(SIZES)}")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]

    cpus = len(os.sched_getaffinity(0))
    threads = max(1, cpus // args.replicas)
    load_before = [round(x, 2) for x in os.getloadavg()]
    bare = bare_classifier(threads=threads * args.replicas, seconds=args.bare_seconds)
    runs = [run_app(args, sizes, batch_size) for batch_size in batch_sizes]
    for run in runs:
        run["targets_met"] = targets_met(run, bare)
    report = {
        "machine": {
            "cpus": cpus,
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
        },
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "replicas": args.replicas,
        "model_threads": threads,
        "bare_classifier": bare,
        "runs": runs,
    }
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
