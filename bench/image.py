"""The serving image: its size, how long it takes to build, and how fast a container starts.

    .venv/bin/python bench/image.py [--container podman] [--starts 5]
                                    [--out bench/results/image.json]

Builds the image with ``scripts/build-image.sh`` (the ONNX export with this checkout's
torch, then the Dockerfile) twice: cold (``--no-cache``: every layer, the dependencies
downloaded from PyPI; the base image is taken as it is, see ``make base-image``) and again
with every layer cached. Then ``--starts`` times: ``run -d`` with the image's own command
(the local stack, port 8000 published, a fresh anonymous volume) until the first
``/healthz`` 200, and until ``consumers_ready`` (every replica has loaded its model). The
image's size is the one the container tool reports. With Podman on machines like these,
CONTAINERS_CONF must name tests/containers/containers.conf.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import free_port  # noqa: E402

IMAGE = "localhost/image-classification:bench"


def build(container: str, *, cold: bool) -> float:
    env = {**os.environ, "PYTHON": sys.executable}
    if cold:
        # The script's own build, but with no layer from the cache.
        subprocess.run(
            [container, "rmi", "--force", IMAGE], capture_output=True, check=False, env=env
        )
        env["BUILD_OPTIONS"] = "--no-cache"
    started = time.monotonic()
    subprocess.run(
        ["bash", str(REPO / "scripts" / "build-image.sh"), container, IMAGE],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - started


def start_once(container: str) -> tuple[float, float]:
    port = free_port()
    started = time.monotonic()
    container_id = subprocess.run(
        [container, "run", "--detach", "--publish", f"127.0.0.1:{port}:8000", IMAGE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        healthy = ready = None
        while ready is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                if answer.status_code == 200:
                    healthy = healthy or time.monotonic() - started
                    if answer.json()["consumers_ready"]:
                        ready = time.monotonic() - started
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > 120:
                raise RuntimeError("the container did not start in 120 s")
            time.sleep(0.02)
        assert healthy is not None
        return healthy, ready
    finally:
        subprocess.run(
            [container, "rm", "--force", "--volumes", container_id],
            capture_output=True,
            check=False,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--container", default="podman")
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "image.json")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    cold = build(args.container, cold=True)
    # The first build after a --no-cache one still rebuilds a few layers; the second is cached.
    build(args.container, cold=False)
    cached = build(args.container, cold=False)
    size = int(
        subprocess.run(
            [args.container, "image", "inspect", "--format", "{{.Size}}", IMAGE],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    starts = [start_once(args.container) for _ in range(args.starts)]
    healthz = sorted(s[0] for s in starts)
    ready = sorted(s[1] for s in starts)
    result: dict[str, Any] = {
        "image_bytes": size,
        "build_cold_s": round(cold, 1),
        "build_cached_s": round(cached, 1),
        "start_to_healthz_s": {"p50": statistics.median(healthz), "max": healthz[-1]},
        "start_to_consumers_ready_s": {"p50": statistics.median(ready), "max": ready[-1]},
        "starts": args.starts,
        "container": args.container,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }
    rows = [
        ("image size", f"{size / 1e6:.0f} MB"),
        ("build, cold (no cache; base image present)", f"{cold:.0f} s"),
        ("build, every layer cached (the export too)", f"{cached:.1f} s"),
        (
            "run -d to /healthz 200, p50 / max",
            f"{statistics.median(healthz):.2f} / {healthz[-1]:.2f} s",
        ),
        (
            "run -d to consumers ready, p50 / max",
            f"{statistics.median(ready):.2f} / {ready[-1]:.2f} s",
        ),
        ("load average before / after", f"{load_before:.1f} / {result['load_after']:.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
