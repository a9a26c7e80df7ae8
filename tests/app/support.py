"""Helpers for the app's tests: sample photos, settings, uploads and polling."""

from __future__ import annotations

import importlib.util
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import REPO, TideflowProcess


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


SKIMAGE_DATA = _package_dir("skimage") / "data"
SKLEARN_IMAGES = _package_dir("sklearn") / "datasets" / "images"
CHELSEA = SKIMAGE_DATA / "chelsea.png"  # a tabby cat
COFFEE = SKIMAGE_DATA / "coffee.png"  # an espresso
PHOTOS = [
    CHELSEA,
    COFFEE,
    SKIMAGE_DATA / "astronaut.png",
    SKIMAGE_DATA / "rocket.jpg",
    SKIMAGE_DATA / "motorcycle_left.png",
    SKLEARN_IMAGES / "china.jpg",
    SKLEARN_IMAGES / "flower.jpg",
]
CAT_LABELS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}

# Every setting explicitly, so a developer's .env cannot change what the tests see
# (an empty value means the default, and overrides .env).
BASE_ENV = {
    "MODEL": "efficientnet_lite0",
    "ENGINE": "onnxruntime",
    "MODEL_PATH": "",
    "TOP_K": "5",
    "NUM_REPLICAS": "",
    "MIN_REPLICAS": "",
    "MAX_REPLICAS": "",
    "AUTOSCALE_FREQUENCY_S": "",
    "AUTOSCALE_BACKLOG_BURN_S": "",
    "AUTOSCALE_CPU_TARGET": "",
    "MODEL_THREADS": "",
    "MAX_UPLOAD_MB": "20",
    "API_TOKEN": "",
    "CLASSIFY_MAX_PIXELS": "",
    "CLASSIFY_CONCURRENCY": "",
    "BATCH_SIZE": "",
    "BATCH_MAX_DELAY_MS": "",
    "FORWARDED_ALLOW_IPS": "",
}


def make_app(home: Path, **settings: str) -> TideflowProcess:
    """A ``tideflow run`` of the app in the repository root, state in ``home``."""
    return TideflowProcess(project_dir=REPO, home=home, env={**BASE_ENV, **settings})


def upload(
    app: TideflowProcess,
    data: bytes,
    name: str,
    *,
    content_type: str = "application/octet-stream",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    files = {"image_file": (name, data, content_type)}
    return httpx.post(f"{app.base_url}/image-upload", files=files, headers=headers, timeout=60)


def wait_for_status(
    app: TideflowProcess,
    status_url: str,
    *,
    until: frozenset[str] = frozenset({"classified", "failed"}),
    timeout: float = 60,
) -> dict[str, Any]:
    """Poll an image's status until it is one of ``until``; its last answer."""
    deadline = time.monotonic() + timeout
    answer: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = httpx.get(f"{app.base_url}{status_url}", timeout=10).json()
        if answer.get("status") in until:
            return answer
        time.sleep(0.1)
    raise AssertionError(f"{status_url} still {answer} after {timeout}s:\n{app.log()[-3000:]}")


def png_bomb(side: int = 60_000) -> bytes:
    """A tiny PNG whose header declares ``side`` x ``side`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        checksum = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", checksum)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 4096)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def upload_during_outage(app: TideflowProcess, photos: list[Path], *, seconds: float) -> list[str]:
    """Upload ``photos`` while something behind the app is down (each must still be
    accepted: the bucket is up), then let the outage last ``seconds``; their status URLs."""
    status_urls = []
    for n, photo in enumerate(photos):
        answer = upload(app, photo.read_bytes(), f"during-{n}-{photo.name}")
        assert answer.status_code == 202, answer.text
        status_urls.append(answer.json()["status_url"])
    time.sleep(seconds)
    return status_urls


def is_classified(app: TideflowProcess, status_url: str) -> bool:
    return bool(httpx.get(f"{app.base_url}{status_url}").json()["status"] == "classified")


def assert_classified(app: TideflowProcess, status_urls: list[str], *, timeout: float) -> None:
    for status_url in status_urls:
        status = wait_for_status(app, status_url, timeout=timeout)
        assert status["status"] == "classified", (status, app.log()[-3000:])
