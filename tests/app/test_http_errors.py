"""Every error case of the HTTP contract: in-process against the app ``build_flow`` makes,
and against ``tideflow run`` where the consumers, the runner or the server process's memory
are part of the answer."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.app.support import (
    CHELSEA,
    InProcessApp,
    in_process_app,
    png_bomb,
    upload,
    wait_for_status,
)
from tests.conftest import TideflowProcess

MB = 1024 * 1024
# The server may hold buffers of a few MB while it reads; a 50 MB upload held in memory
# would show as 50+ MB.
RSS_GROWTH_LIMIT = 15 * MB


def _rss(app: TideflowProcess) -> int:
    assert app.process is not None
    return psutil.Process(app.process.pid).memory_info().rss


def _chunked_multipart(
    total_bytes: int, boundary: str = "tideflow-test-boundary"
) -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image_file"; '
        f'filename="huge.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    ).encode()
    chunk = b"\xff\xd8\xff" + b"\0" * (MB - 3)
    for _ in range(total_bytes // MB):
        yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApp]:
    with in_process_app(tmp_path_factory.mktemp("http-errors") / "home") as app:
        yield app


def _upload(
    app: InProcessApp, data: bytes, name: str, content_type: str = "application/octet-stream"
) -> httpx.Response:
    return app.client.post("/image-upload", files={"image_file": (name, data, content_type)})


def test_missing_file_is_400(app: InProcessApp) -> None:
    response = app.client.post("/image-upload")
    assert response.status_code == 400
    assert "image_file" in response.json()["detail"]


def test_text_field_instead_of_file_is_400(app: InProcessApp) -> None:
    response = app.client.post("/image-upload", data={"image_file": "hello"})
    assert response.status_code == 400
    assert isinstance(response.json()["detail"], str)


def test_empty_file_is_400(app: InProcessApp) -> None:
    response = _upload(app, b"", "empty.jpg", content_type="image/jpeg")
    assert response.status_code == 400
    assert response.json() == {"detail": "The file is empty."}


def test_text_file_named_jpg_is_415(app: InProcessApp) -> None:
    response = _upload(app, b"just some text\n" * 100, "photo.jpg", content_type="image/jpeg")
    assert response.status_code == 415
    assert "not an image" in response.json()["detail"]


@pytest.mark.slow
def test_50_mb_upload_is_413_without_filling_memory(shared_app: TideflowProcess) -> None:
    before = _rss(shared_app)
    declared = upload(shared_app, b"\xff\xd8\xff" + bytes(50 * MB), "huge.jpg")
    assert declared.status_code == 413
    assert declared.json() == {"detail": "The file is larger than the 20 MB limit."}
    # No Content-Length: the server must count the bytes as they stream in.
    streamed = httpx.post(
        f"{shared_app.base_url}/image-upload",
        content=_chunked_multipart(50 * MB),
        headers={"content-type": "multipart/form-data; boundary=tideflow-test-boundary"},
        timeout=60,
    )
    assert streamed.status_code == 413
    assert _rss(shared_app) - before < RSS_GROWTH_LIMIT
    assert httpx.get(f"{shared_app.base_url}/healthz").json()["status"] == "ok"


def test_upload_one_byte_over_the_limit_is_413(app: InProcessApp) -> None:
    response = _upload(app, b"\xff\xd8\xff" + bytes(20 * MB - 2), "just-over.jpg")
    assert response.status_code == 413


@pytest.mark.slow
def test_decompression_bomb_fails_with_a_reason_and_the_app_stays_up(
    shared_app: TideflowProcess,
) -> None:
    response = upload(shared_app, png_bomb(), "bomb.png", content_type="image/png")
    assert response.status_code == 202  # the header is a PNG's; decoding is the consumer's job
    status = wait_for_status(shared_app, response.json()["status_url"])
    assert status["status"] == "failed"
    assert "too large" in status["error"]
    assert status["classifications"] == []
    health = httpx.get(f"{shared_app.base_url}/healthz").json()
    assert health["status"] == "ok"
    assert health["consumers_ready"] is True
    # Listed as failed on the results page and by the CLI, and the next upload still works.
    page = httpx.get(f"{shared_app.base_url}/image-upload-results").text
    assert f'data-image-id="{status["image_id"]}" data-status="failed"' in page
    letters = shared_app.cli("dead-letters", "list")
    assert "too large" in letters.stdout
    after = upload(shared_app, CHELSEA.read_bytes(), "after-bomb.png")
    assert wait_for_status(shared_app, after.json()["status_url"])["status"] == "classified"


@pytest.mark.slow
def test_xss_file_name_is_shown_as_text(shared_app: TideflowProcess) -> None:
    name = "<img src=x onerror=alert(1)>.png"
    response = upload(shared_app, CHELSEA.read_bytes(), name, content_type="image/png")
    assert response.status_code == 202
    assert response.json()["image_name"] == name
    wait_for_status(shared_app, response.json()["status_url"])
    page = httpx.get(f"{shared_app.base_url}/image-upload-results")
    assert name not in page.text
    assert html.escape(name, quote=False) in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


@pytest.mark.parametrize(
    "image_id",
    [
        "nothing-here",
        base64.urlsafe_b64encode(b"uploads/missing.png").decode().rstrip("=") + ".1",
        base64.urlsafe_b64encode(b"../../etc/passwd").decode().rstrip("=") + ".1",
        base64.urlsafe_b64encode(b"/etc/passwd").decode().rstrip("=") + ".1",
    ],
)
def test_unknown_or_unsafe_image_ids_are_404(app: InProcessApp, image_id: str) -> None:
    status = app.client.get(f"/api/images/{image_id}")
    assert status.status_code == 404
    assert status.json() == {"detail": "No image with this id."}
    thumbnail = app.client.get(f"/images/{image_id}/thumbnail")
    assert thumbnail.status_code == 404


def test_results_filters_are_validated(app: InProcessApp) -> None:
    base = "/api/results"
    assert app.client.get(base, params={"label": "", "min_confidence": ""}).status_code == 200
    for params in ({"min_confidence": "abc"}, {"min_confidence": "1.5"}, {"limit": "0"}):
        response = app.client.get(base, params=params)
        assert response.status_code == 400, params
        assert isinstance(response.json()["detail"], str)


def test_classify_answers_without_storing(app: InProcessApp) -> None:
    total_before = app.client.get("/api/results").json()["total"]
    files = {"image_file": ("chelsea.png", CHELSEA.read_bytes(), "image/png")}
    response = app.client.post("/classify", files=files)
    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {"classifications", "model_id", "latency_ms"}
    assert len(answer["classifications"]) == 5
    text = {"image_file": ("notes.png", b"not an image at all", "image/png")}
    assert app.client.post("/classify", files=text).status_code == 415
    assert app.client.get("/api/results").json()["total"] == total_before


@pytest.mark.slow
def test_metrics_docs_and_health(shared_app: TideflowProcess) -> None:
    metrics = httpx.get(f"{shared_app.base_url}/metrics").text
    for name in (
        'image_uploads_total{outcome="accepted"}',
        "tideflow_events_processed_total",
        "tideflow_event_processing_seconds_bucket",
        "tideflow_queue_depth",
        "tideflow_dead_letters",
    ):
        assert name in metrics, name
    openapi = httpx.get(f"{shared_app.base_url}/openapi.json").json()
    for path in ("/image-upload", "/api/images/{image_id}", "/api/results", "/classify"):
        assert path in openapi["paths"], path
    assert httpx.get(f"{shared_app.base_url}/docs").status_code == 200
