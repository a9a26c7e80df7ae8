"""The holes an attack run found, kept closed: huge paging values, /classify memory, CSRF."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import threading
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest
from PIL import Image

from tests.app.conftest import LOCKED_TOKEN
from tests.app.support import CHELSEA, upload
from tests.conftest import TideflowProcess

pytestmark = pytest.mark.slow

MB = 1024 * 1024
BEARER = {"Authorization": f"Bearer {LOCKED_TOKEN}"}


# --- 1. paging values the warehouse cannot take are 400 with a message -------------------


@pytest.mark.parametrize(
    "query",
    [
        "/api/results?offset=9223372036854775807",
        "/api/results?offset=1000000000000000000000000000000",
        "/api/results?limit=1000000000000000000000000000000",
        "/api/results?offset=-1",
        "/api/results?label=tabby&offset=9223372036854775807",
        "/image-upload-results?offset=1000000000000000000000000000000",
        "/image-upload-results?offset=9223372036854775807&limit=200",
    ],
)
def test_out_of_range_paging_is_400(shared_app: TideflowProcess, query: str) -> None:
    response = httpx.get(f"{shared_app.base_url}{query}", timeout=30)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert "offset" in detail or "limit" in detail


def test_largest_offset_is_an_empty_page(shared_app: TideflowProcess) -> None:
    response = httpx.get(f"{shared_app.base_url}/api/results?offset=1000000000", timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == []


# --- 2. /classify cannot exhaust the run process's memory --------------------------------


def _zero_png(width: int, height: int, mode: str) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height)).save(out, format="PNG", compress_level=9)
    return out.getvalue()


def _peak_rss_while(pid: int, work: concurrent.futures.Future[object]) -> int:
    process = psutil.Process(pid)
    peak = process.memory_info().rss
    while not work.done():
        peak = max(peak, process.memory_info().rss)
        time.sleep(0.01)
    return max(peak, process.memory_info().rss)


def test_concurrent_big_images_keep_the_run_process_small(shared_app: TideflowProcess) -> None:
    assert shared_app.process is not None
    url = f"{shared_app.base_url}/classify"
    # The attack: a legal 9,400 x 9,500 all-zero PNG (~270 MB decoded, under Pillow's 89 MP).
    attack = _zero_png(9_400, 9_500, "L")
    # Just under the /classify budget (12 MP), gray + alpha: the costliest mode to decode.
    near_limit = _zero_png(3_464, 3_464, "LA")
    assert len(attack) < 400_000 and len(near_limit) < 400_000

    def post(data: bytes) -> httpx.Response:
        files = {"image_file": ("zeros.png", data, "image/png")}
        return httpx.post(url, files=files, timeout=120)

    baseline = psutil.Process(shared_app.process.pid).memory_info().rss
    answers: list[httpx.Response] = []
    for payload in (attack, near_limit):
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            barrier = threading.Barrier(8)

            def one(data: bytes = payload, barrier: threading.Barrier = barrier) -> httpx.Response:
                barrier.wait()
                return post(data)

            futures = [pool.submit(one) for _ in range(8)]
            everything = pool.submit(concurrent.futures.wait, futures)
            peak = _peak_rss_while(shared_app.process.pid, everything)
            answers += [f.result() for f in futures]
        growth = peak - baseline
        print(f"/classify x8: run process peak RSS growth {growth / MB:.0f} MB")
        # 2 slots x 12 MP x ~9 bytes ~ 220 MB; measured 78 and 245 MB (3.3 GB before the fix).
        assert growth < 450 * MB, f"run process grew by {growth / MB:.0f} MB"

    attack_answers, near_answers = answers[:8], answers[8:]
    assert {r.status_code for r in attack_answers} <= {413, 503}
    refused = [r for r in attack_answers if r.status_code == 413]
    assert refused and "CLASSIFY_MAX_PIXELS" in refused[0].json()["detail"]
    codes = [r.status_code for r in near_answers]
    assert set(codes) <= {200, 503}, [r.text for r in near_answers]
    assert 200 in codes
    for busy in (r for r in near_answers if r.status_code == 503):
        assert busy.headers["retry-after"] == "1"
    # Still serving, and still classifying ordinary photos.
    cat = post(CHELSEA.read_bytes())
    assert cat.status_code == 200
    assert httpx.get(f"{shared_app.base_url}/healthz").status_code == 200


# --- 3. cross-site requests with the login cookie are refused ----------------------------


@contextlib.contextmanager
def _logged_in(app: TideflowProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app.base_url, timeout=30) as client:
        assert client.post("/login", data={"token": LOCKED_TOKEN}).status_code == 303
        yield client


def _post_cat(client: httpx.Client, headers: dict[str, str]) -> httpx.Response:
    files = {"image_file": ("cat.png", CHELSEA.read_bytes(), "image/png")}
    return client.post("/image-upload", files=files, headers=headers)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://127.0.0.1:1"},  # another port of the same host: the same site
        {"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:1"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "null"},
        {},  # a replayed cookie without any proof of origin
        {"X-CSRF-Token": "0" * 64},
    ],
)
def test_cookie_uploads_from_other_origins_are_refused(
    locked_service: TideflowProcess, headers: dict[str, str]
) -> None:
    with _logged_in(locked_service) as client:
        response = _post_cat(client, headers)
        assert response.status_code == 403, response.text
        assert "Cross-site" in response.json()["detail"]
        classify = client.post(
            "/classify",
            files={"image_file": ("cat.png", CHELSEA.read_bytes(), "image/png")},
            headers=headers,
        )
        assert classify.status_code == 403


def test_cookie_uploads_from_this_site_are_accepted(locked_service: TideflowProcess) -> None:
    with _logged_in(locked_service) as client:
        page = client.get("/").text
        token = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        assert len(token) == 64
        origin = locked_service.base_url
        for headers in (
            {"X-CSRF-Token": token},
            {"X-CSRF-Token": token, "Origin": "http://evil.example"},  # the token is the proof
            {"Sec-Fetch-Site": "same-origin", "Origin": origin},
            {"Origin": origin},
        ):
            assert _post_cat(client, headers).status_code == 202, headers
        # Reads stay as they were.
        assert client.get("/api/results", headers={"Origin": "http://evil.example"}).is_success


def test_bearer_requests_are_not_checked_for_origin(locked_service: TideflowProcess) -> None:
    headers = {**BEARER, "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    response = upload(locked_service, CHELSEA.read_bytes(), "cat.png", headers=headers)
    assert response.status_code == 202


def test_open_app_refuses_browsers_on_other_origins(shared_app: TideflowProcess) -> None:
    data = CHELSEA.read_bytes()
    refused = upload(shared_app, data, "cat.png", headers={"Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403
    assert (
        upload(shared_app, data, "cat.png", headers={"Origin": "http://evil.example"}).status_code
        == 403
    )
    # Plain clients (no Origin, no cookie) are what an open app is for.
    assert upload(shared_app, data, "cat.png").status_code == 202


# --- a replica that dies while idle is noticed, reported and restarted --------------------


def _replica_pids(app: TideflowProcess) -> list[int]:
    assert app.process is not None
    children = psutil.Process(app.process.pid).children()
    return sorted(c.pid for c in children if "spawn_main" in " ".join(c.cmdline()))


def test_healthz_notices_a_replica_that_died_idle(shared_app: TideflowProcess) -> None:
    health = httpx.get(f"{shared_app.base_url}/healthz").json()
    assert health["consumers_ready"] is True
    assert set(health["replicas"].values()) == {"ready"}
    before = _replica_pids(shared_app)
    assert len(before) == len(health["replicas"]) == 2
    psutil.Process(before[0]).kill()
    psutil.Process(before[0]).wait(5)
    # At once: not ready, and which replica is not.
    health = httpx.get(f"{shared_app.base_url}/healthz").json()
    assert health["consumers_ready"] is False
    assert set(health["replicas"].values()) & {"dead", "starting"}, health
    # Restarted without waiting for an event to be handed to the dead one.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        health = httpx.get(f"{shared_app.base_url}/healthz").json()
        if health["consumers_ready"]:
            break
        time.sleep(0.2)
    assert health["consumers_ready"] is True, shared_app.log()[-3000:]
    after = _replica_pids(shared_app)
    assert len(after) == 2 and before[0] not in after
    assert "died while idle" in shared_app.log()
