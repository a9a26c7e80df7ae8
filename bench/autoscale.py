"""Autoscaling benchmark: a burst of photos dropped into the bucket folder, burned by a fixed
replica count and by the autoscaler.

    .venv/bin/python bench/autoscale.py [--images 300] [--max-replicas 2] [--frequency 5]
                                        [--burn 10] [--out bench/results/autoscale.json]

For each setup (one replica; ``--max-replicas`` replicas; autoscaling 1..``--max-replicas``
every ``--frequency`` s with a ``--burn`` s backlog-burn threshold) a fresh ``tideflow run``
of the app (local stack) is started and, once its replicas are ready, ``--images`` sample
photos (scikit-image's and scikit-learn's, as the tests use) are renamed into the bucket
folder at once. Measured from that moment: seconds until every photo's row is committed
(``tideflow_events_processed_total`` in /metrics, polled every 0.2 s), images/s, the mean
and the most ready replicas while it burned, and for the autoscaler when its first replica
was added and when it was back at one (its log lines). Each setup is one run: on a shared
machine, compare within one run of the script.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SITE = Path(np.__file__).resolve().parents[1]
PHOTOS = [
    SITE / "skimage/data" / name
    for name in ("chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png")
] + [SITE / "sklearn/datasets/images" / name for name in ("china.jpg", "flower.jpg")]
# Every app setting that matters here explicitly, so a local .env does not change it
# (an empty value is the default).
REPLICA_SETTINGS = ("NUM_REPLICAS", "MIN_REPLICAS", "MAX_REPLICAS", "MODEL_THREADS")
AUTOSCALE_SETTINGS = ("AUTOSCALE_FREQUENCY_S", "AUTOSCALE_BACKLOG_BURN_S", "AUTOSCALE_CPU_TARGET")
APP_ENV = {
    "MODEL": "efficientnet_lite0",
    "ENGINE": "onnxruntime",
    "MODEL_PATH": "",
    "BATCH_SIZE": "1",
    "API_TOKEN": "",
    **dict.fromkeys(REPLICA_SETTINGS + AUTOSCALE_SETTINGS, ""),
}
DONE = re.compile(r'^tideflow_events_processed_total\{consumer="classify_image"\} (\S+)$', re.M)
READY = re.compile(r'^tideflow_consumer_replicas\{consumer="classify_image"\} (\S+)$', re.M)


@dataclasses.dataclass
class Result:
    setup: str
    images: int
    seconds: float
    images_per_s: float
    mean_replicas: float
    most_replicas: int
    first_scale_up_s: float | None
    back_to_one_s: float | None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def burst(setup: str, settings: dict[str, str], *, images: int, work: Path) -> Result:
    home = work / setup / "home"
    home.mkdir(parents=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = work / setup / "run.log"
    env = {**os.environ, **APP_ENV, **settings, "TIDEFLOW_HOME": str(home)}
    with open(log_path, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tideflow", "run", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{setup}: not ready:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2).json()["consumers_ready"]:
                    break
            time.sleep(0.1)
        staging = work / setup / "staging"
        staging.mkdir()
        names = []
        for n in range(images):
            photo = PHOTOS[n % len(PHOTOS)]
            names.append(f"burst-{n:04}{photo.suffix}")
            (staging / names[-1]).write_bytes(photo.read_bytes())
        started = time.monotonic()
        wall_started = time.time()
        for name in names:
            os.replace(staging / name, home / "image-bucket" / name)
        ready_samples: list[int] = []
        while True:
            metrics = httpx.get(f"{base}/metrics", timeout=10).text
            ready_samples.append(int(float(READY.search(metrics).group(1))))  # type: ignore[union-attr]
            found = DONE.search(metrics)
            if found and float(found.group(1)) >= images:
                break
            if time.monotonic() - started > 600:
                raise RuntimeError(f"{setup}: not done after 600 s")
            time.sleep(0.2)
        seconds = time.monotonic() - started
        back_to_one = None
        if "MAX_REPLICAS" in settings:  # wait for the scale-down and note when it came
            for _ in range(300):
                if '"classify_image[1]"' not in httpx.get(f"{base}/healthz", timeout=5).text:
                    break
                time.sleep(0.2)
            back_to_one = time.monotonic() - started
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    log = log_path.read_text()
    first_up = re.search(r"^(\S+ \S+) INFO tideflow.autoscaler: classify_image: 1 -> ", log, re.M)
    up_at = None if first_up is None else _log_time(first_up.group(1)) - wall_started
    return Result(
        setup=setup,
        images=images,
        seconds=round(seconds, 2),
        images_per_s=round(images / seconds, 1),
        mean_replicas=round(sum(ready_samples) / len(ready_samples), 2),
        most_replicas=max(ready_samples),
        first_scale_up_s=None if up_at is None else round(up_at, 2),
        back_to_one_s=None if back_to_one is None else round(back_to_one, 2),
    )


def _log_time(stamp: str) -> float:
    parsed = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
    return parsed.timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--max-replicas", type=int, default=2)
    parser.add_argument("--frequency", type=float, default=5.0)
    parser.add_argument("--burn", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/autoscale.json")
    args = parser.parse_args()
    most = args.max_replicas
    setups = {
        "fixed 1": {"NUM_REPLICAS": "1"},
        f"fixed {most}": {"NUM_REPLICAS": str(most)},
        f"autoscale 1..{most}": {
            "MAX_REPLICAS": str(most),
            "AUTOSCALE_FREQUENCY_S": str(args.frequency),
            "AUTOSCALE_BACKLOG_BURN_S": str(args.burn),
        },
    }
    print(f"load average before: {os.getloadavg()[0]:.2f}, CPUs: {os.cpu_count()}")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-autoscale-") as work:
        for setup, settings in setups.items():
            results.append(burst(setup, settings, images=args.images, work=Path(work)))
            print(f"  {setup}: done", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    header = f"{'setup':<16}{'images':>7}{'seconds':>9}{'img/s':>8}{'mean rep':>10}{'most':>6}"
    print(header + f"{'1st up s':>10}{'back to 1 s':>13}")
    for r in results:
        up = "-" if r.first_scale_up_s is None else f"{r.first_scale_up_s:.1f}"
        down = "-" if r.back_to_one_s is None else f"{r.back_to_one_s:.1f}"
        print(
            f"{r.setup:<16}{r.images:>7}{r.seconds:>9.1f}{r.images_per_s:>8.1f}"
            f"{r.mean_replicas:>10.2f}{r.most_replicas:>6}{up:>10}{down:>13}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "results": [dataclasses.asdict(r) for r in results],
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
