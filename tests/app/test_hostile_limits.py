"""The smaller holes: login throttling, slow headers, connection limit, nosniff, HEAD and
Range on thumbnails, very long file names, error codes in the OpenAPI schema.

Uvicorn's limits and what is measured on the server process run against ``tideflow run``;
what the HTTP service alone decides runs in-process."""

from __future__ import annotations

import io
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from PIL import Image

from tests.app.support import CHELSEA, InProcessApp, in_process_app, make_app, upload
from tests.conftest import TideflowProcess

TOKEN = "limits-token-123"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApp]:
    with in_process_app(
        tmp_path_factory.mktemp("limits-in-process") / "home", API_TOKEN=TOKEN
    ) as app:
        yield app


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TideflowProcess]:
    app = make_app(
        tmp_path_factory.mktemp("limits") / "home",
        API_TOKEN=TOKEN,
        TIDEFLOW_HTTP_HEADER_TIMEOUT="2",
        TIDEFLOW_HTTP_MAX_CONNECTIONS="16",
    )
    app.start("--only", "service", wait_consumers=False)
    yield app
    app.stop()
    app.close()


def _guesses(url: str, count: int, *, first: int = 0) -> list[int]:
    """Wrong tokens, each from a different X-Forwarded-For address; their status codes."""
    return [
        httpx.post(
            url, data={"token": f"guess-{i}"}, headers={"X-Forwarded-For": f"203.0.113.{i}"}
        ).status_code
        for i in range(first, first + count)
    ]


@pytest.mark.slow
def test_login_is_throttled_per_client(app: TideflowProcess) -> None:
    url = f"{app.base_url}/login"
    # Rotating X-Forwarded-For buys no fresh attempts: no proxy is trusted by default.
    codes = _guesses(url, 30)
    assert codes == [401] * 10 + [429] * 20
    throttled = httpx.post(url, data={"token": "guess-11"})
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    assert "Too many" in throttled.text
    # Even the right token waits: guessing must not go on at any speed.
    assert httpx.post(url, data={"token": TOKEN}).status_code == 429
    # Bearer clients are not affected.
    assert httpx.get(f"{app.base_url}/api/results", headers=BEARER).status_code == 200


@pytest.mark.slow
def test_forwarded_headers_are_believed_from_configured_proxies(tmp_path: Path) -> None:
    behind_proxy = make_app(tmp_path / "home", API_TOKEN=TOKEN, FORWARDED_ALLOW_IPS="127.0.0.1")
    behind_proxy.start("--only", "service", wait_consumers=False)
    try:
        url = f"{behind_proxy.base_url}/login"
        # Each guess from another client behind the proxy: each has its own 10.
        assert _guesses(url, 12) == [401] * 12
        one_client = {"X-Forwarded-For": "198.51.100.7"}
        codes = [
            httpx.post(url, data={"token": "nope"}, headers=one_client).status_code
            for _ in range(11)
        ]
        assert codes == [401] * 10 + [429]
        # Another client still logs in, and the proxy's https makes the cookie Secure.
        right = httpx.post(
            url,
            data={"token": TOKEN},
            headers={"X-Forwarded-For": "198.51.100.8", "X-Forwarded-Proto": "https"},
        )
        assert right.status_code == 303
        assert "secure" in right.headers["set-cookie"].lower()
    finally:
        behind_proxy.stop()
        behind_proxy.close()


@pytest.mark.slow
def test_slow_headers_are_cut_off(app: TideflowProcess) -> None:
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        answer = b""
        try:
            for i in range(40):  # one header line every 0.25 s, never the blank line
                sock.sendall(f"X-Slow-{i}: 1\r\n".encode())
                time.sleep(0.25)
        except OSError:
            pass  # closed by the server
        sock.settimeout(5)
        try:
            while chunk := sock.recv(4096):
                answer += chunk
        except OSError:
            pass
        waited = time.monotonic() - started
    assert waited < 8, f"the connection stayed open {waited:.1f}s"
    assert answer.startswith(b"HTTP/1.1 408") or answer == b""


def _raw_request(port: int, header_bytes: int) -> bytes:
    """A GET whose request line and headers are ``header_bytes`` long, sent in one write;
    everything the server answers until it closes (or 5 s pass)."""
    line = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    pad = header_bytes - len(line) - len(b"X-Pad: \r\n\r\n")
    request = line + b"X-Pad: " + b"a" * pad + b"\r\n\r\n"
    assert len(request) == header_bytes
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"}"):
                    break  # a kept-alive connection: the whole JSON answer is here
        except OSError:
            pass
    return answer


@pytest.mark.slow
def test_header_blocks_over_16_kb_are_refused_however_sent(app: TideflowProcess) -> None:
    assert _raw_request(app.port, 15 * 1024).startswith(b"HTTP/1.1 200")
    for size in (20 * 1024, 100 * 1024):  # 200 OK before: the limit held for slow senders only
        answer = _raw_request(app.port, size)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        assert b"connection: close" in answer.lower()
        assert b"16 KB" in answer  # and then the server closed it (recv returned b"")


@pytest.mark.slow
def test_connections_beyond_the_limit_get_503(app: TideflowProcess) -> None:
    idle = [socket.create_connection(("127.0.0.1", app.port)) for _ in range(16)]
    try:
        for sock in idle:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # headers never finished
        time.sleep(0.3)
        response = httpx.get(f"{app.base_url}/healthz", timeout=5)
        assert response.status_code == 503
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.3)
    assert httpx.get(f"{app.base_url}/healthz", timeout=5).status_code == 200


@pytest.mark.slow
def test_json_api_says_nosniff(app: TideflowProcess) -> None:
    for path, headers in (
        ("/api/results", BEARER),
        ("/api/images/bm90LWEta2V5.1", BEARER),
        ("/api/results", {}),
        ("/healthz", {}),
        ("/openapi.json", {}),
    ):
        response = httpx.get(f"{app.base_url}{path}", headers=headers)
        assert response.headers["x-content-type-options"] == "nosniff", path


def _upload(app: InProcessApp, data: bytes, name: str) -> httpx.Response:
    files = {"image_file": (name, data, "application/octet-stream")}
    return app.client.post("/image-upload", files=files, headers=BEARER)


def test_thumbnails_answer_head_and_ranges(in_process: InProcessApp) -> None:
    client = in_process.client
    accepted = _upload(in_process, CHELSEA.read_bytes(), "cat.png")
    assert accepted.status_code == 202
    url = f"/images/{accepted.json()['image_id']}/thumbnail"
    full = client.get(url, headers=BEARER)
    assert full.status_code == 200
    assert full.headers["accept-ranges"] == "bytes"
    size = len(full.content)

    head = client.head(url, headers=BEARER)
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == size
    assert head.headers["content-type"] == "image/jpeg"

    part = client.get(url, headers={**BEARER, "Range": "bytes=0-9"})
    assert part.status_code == 206
    assert part.content == full.content[:10]
    assert part.headers["content-range"] == f"bytes 0-9/{size}"
    tail = client.get(url, headers={**BEARER, "Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == full.content[-5:]
    rest = client.get(url, headers={**BEARER, "Range": "bytes=100-"})
    assert rest.status_code == 206 and rest.content == full.content[100:]
    outside = client.get(url, headers={**BEARER, "Range": f"bytes={size}-"})
    assert outside.status_code == 416
    assert outside.headers["content-range"] == f"bytes */{size}"
    several = client.get(url, headers={**BEARER, "Range": "bytes=0-1,5-6"})
    assert several.status_code == 200 and several.content == full.content
    # Positions longer than Python's 4,300-digit int() limit (500 before).
    huge = "9" * 5000
    for method in ("GET", "HEAD"):
        whole = client.request(method, url, headers={**BEARER, "Range": f"bytes=0-{huge}"})
        assert whole.status_code == 206
        assert whole.headers["content-range"] == f"bytes 0-{size - 1}/{size}"
        past = client.request(method, url, headers={**BEARER, "Range": f"bytes={huge}-"})
        assert past.status_code == 416
    suffix = client.get(url, headers={**BEARER, "Range": f"bytes=-{huge}"})
    assert suffix.status_code == 206 and suffix.content == full.content
    assert client.head(url).status_code == 401


def test_long_file_names_behave_as_documented(in_process: InProcessApp) -> None:
    data = CHELSEA.read_bytes()
    long_name = "n" * 3000 + ".png"
    accepted = _upload(in_process, data, long_name)
    assert accepted.status_code == 202
    assert accepted.json()["image_name"] == long_name[:255]
    for size in (8 * 1024, 64 * 1024):
        refused = _upload(in_process, data, "n" * size + ".png")
        assert refused.status_code == 400
        assert "file name" in refused.json()["detail"]


def test_openapi_documents_the_error_codes(in_process: InProcessApp) -> None:
    schema = in_process.client.get("/openapi.json").json()
    documented = {
        code
        for operations in schema["paths"].values()
        for operation in operations.values()
        for code in operation["responses"]
    }
    assert {"400", "401", "403", "404", "413", "415", "503"} <= documented
    upload_codes = set(schema["paths"]["/image-upload"]["post"]["responses"])
    assert {"202", "400", "401", "403", "413", "415"} <= upload_codes
    classify_codes = set(schema["paths"]["/classify"]["post"]["responses"])
    assert {"413", "422", "503"} <= classify_codes
    corrections = schema["paths"]["/api/images/{image_id}/corrections"]
    assert {"200", "400", "401", "403", "404", "409", "413"} <= set(
        corrections["post"]["responses"]
    )
    assert {"200", "401", "404"} <= set(corrections["get"]["responses"])
    labels = schema["components"]["schemas"]["CorrectionIn"]["properties"]["labels"]
    assert labels["maxItems"] == 20
    assert labels["items"]["maxLength"] == 100
    pattern = re.compile(labels["items"]["pattern"])
    assert pattern.fullmatch("tabby cat")
    for bad in ("a|b", "nul\x00", "esc\x1b", "bidi\u202e", "zero\u200bwidth"):
        assert not pattern.fullmatch(bad), bad


def test_a_405_names_every_method_the_schema_documents(in_process: InProcessApp) -> None:
    """Schemathesis's ST205: ``Allow`` lists the path's documented methods."""
    schema = in_process.client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        concrete = path.replace("{image_id}", "0" * 32)
        answer = in_process.client.request("OPTIONS", concrete)
        assert answer.status_code == 405, path
        allowed = set(answer.headers["allow"].split(", ")) - {"HEAD"}
        assert allowed == {method.upper() for method in operations}, path


@pytest.mark.slow
def test_previews_of_huge_images_are_refused_without_decoding(app: TideflowProcess) -> None:
    out = io.BytesIO()
    Image.new("L", (9_400, 9_500)).save(out, format="PNG", compress_level=9)
    accepted = upload(app, out.getvalue(), "zeros.png", headers=BEARER)
    assert accepted.status_code == 202  # under Pillow's bomb limit: the replicas may try
    assert app.process is not None
    before = psutil.Process(app.process.pid).memory_info().rss
    url = f"{app.base_url}/images/{accepted.json()['image_id']}/thumbnail"
    answers = [httpx.get(url, headers=BEARER, timeout=30) for _ in range(4)]
    assert {r.status_code for r in answers} == {404}
    assert "too many pixels" in answers[0].json()["detail"]
    grown = psutil.Process(app.process.pid).memory_info().rss - before
    assert grown < 100 * 1024 * 1024
