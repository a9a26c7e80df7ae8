"""Helpers for the app's tests: sample photos, settings, uploads and polling, and the app
built in the test's process (``in_process_app``)."""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import re
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from image_classification.dependencies import results_table
from image_classification.flow import build_flow
from image_classification.schemas import Classification, ImageClassificationRow
from image_classification.settings import Settings
from tests.conftest import REPO, TideflowProcess
from tideflow import Flow
from tideflow.dependencies import Resolver
from tideflow.infra import apply
from tideflow.io.primitive import SinkPrimitive


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


def app_settings(**settings: str) -> Settings:
    """The settings ``make_app`` gives a process (``BASE_ENV`` and ``settings``, nothing
    from .env or the environment), for an app built in this process."""
    given = {"STACK": "local", **BASE_ENV, **settings}
    fields = {name.lower(): value for name, value in given.items()}
    return Settings(
        _env_file=None, **{k: v for k, v in fields.items() if k in Settings.model_fields}
    )


class InProcessApp:
    """The app built by ``build_flow`` in the test's process, its HTTP service behind a
    TestClient: what ``tideflow run --only service`` serves, without a process (no
    consumers, no /healthz or /metrics, which the runner adds). ``flow.dependency_overrides``
    swaps parts (the model, the warehouse) while it runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.flow: Flow = build_flow(settings)
        apply(self.flow)  # what `tideflow run` does first
        self.resolver = Resolver(overrides=self.flow.dependency_overrides)
        self.asgi = self.flow.services[0].build_app(resolver=self.resolver)
        self.client = self.new_client()

    def new_client(self) -> TestClient:
        """A client with its own cookies that, like httpx's, does not follow redirects."""
        return TestClient(self.asgi, follow_redirects=False)

    @property
    def base_url(self) -> str:
        return str(self.client.base_url)

    def close(self) -> None:
        self.client.close()
        self.resolver.close()


@contextlib.contextmanager
def in_process_app(home: Path, **settings: str) -> Iterator[InProcessApp]:
    """``InProcessApp`` with ``settings`` (as ``make_app`` takes them), state in ``home``."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TIDEFLOW_HOME", str(home))
        app = InProcessApp(app_settings(**settings))
        try:
            yield app
        finally:
            app.close()


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


def classified_row(
    image_id: str,
    name: str,
    labels: list[str],
    *,
    upload: datetime.datetime | None = None,
    latency_ms: float = 1.0,
) -> ImageClassificationRow:
    """A row as the consumer writes it (here: these labels, most sure first)."""
    upload = upload or datetime.datetime.now(datetime.UTC)
    return ImageClassificationRow(
        image_id=image_id,
        image_name=name,
        upload=upload,
        classifications=[
            Classification(label=label, confidence=round(0.9 / (i + 1), 3))
            for i, label in enumerate(labels)
        ],
        model_id="test-model@1",
        width=8,
        height=8,
        size_bytes=100,
        content_type="image/png",
        latency_ms=latency_ms,
        classified_at=upload + datetime.timedelta(milliseconds=latency_ms),
    )


def write_row(app: InProcessApp, image_id: str, name: str, labels: list[str]) -> None:
    """The row the consumer would write for ``image_id``, into the app's results table."""
    results = app.flow.consumers[0].sink
    results.sink().write([(f"{image_id}#test", classified_row(image_id, name, labels))])


def check_stats_charts(app: InProcessApp, table: SinkPrimitive) -> None:
    """Rows of the last hour written to ``table``, then /stats of ``app`` reading ``table``
    (its results table overridden): every chart drawn from them, in that warehouse's SQL."""
    now = datetime.datetime.now(datetime.UTC)
    rows = [
        classified_row(
            f"img-{i}",
            f"photo-{i}.png",
            [label, "other"],
            upload=now - datetime.timedelta(minutes=minutes),
            latency_ms=100.0 * (i + 1),
        )
        for i, (label, minutes) in enumerate(
            [("tabby", 50), ("tabby", 30), ("espresso", 20), ("rocket", 5)]
        )
    ]
    table.sink().write([(f"{row.image_id}#1", row) for row in rows])
    app.flow.dependency_overrides[results_table] = table.reader
    try:
        page = app.client.get("/stats")
    finally:
        del app.flow.dependency_overrides[results_table]
    assert page.status_code == 200, page.text
    text = page.text
    assert 'id="stat-total">4<' in text
    assert 'data-label="tabby" data-count="2"' in text
    assert 'data-label="espresso" data-count="1"' in text
    assert text.count('<rect class="column"') == 4  # one per minute with a row
    assert '<polyline class="series series-p95"' in text
    assert "<code>test-model@1</code></td><td>4</td>" in text
    p50, p95 = (int(ms) for ms in re.findall(r'tile-value">(\d+) ms<', text))
    assert 100 <= p50 <= p95 <= 400, (p50, p95)
