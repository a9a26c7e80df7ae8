"""With API_TOKEN set: clients send a Bearer token, browsers log in for an HttpOnly cookie.

In-process (the app built by ``build_flow``), except what the runner and Uvicorn decide:
the pages it serves, and which proxy headers are believed."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.app.conftest import LOCKED_TOKEN
from tests.app.support import CHELSEA, InProcessApp, in_process_app
from tests.conftest import TideflowProcess

TOKEN = LOCKED_TOKEN
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def locked_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessApp]:
    # The HTTP service alone: uploads are journaled, nothing needs classifying here.
    with in_process_app(tmp_path_factory.mktemp("auth") / "home", API_TOKEN=TOKEN) as app:
        yield app


def _upload(app: InProcessApp, headers: dict[str, str] | None = None) -> httpx.Response:
    files = {"image_file": ("cat.png", CHELSEA.read_bytes(), "application/octet-stream")}
    return app.client.post("/image-upload", files=files, headers=headers)


def test_upload_needs_the_token(locked_app: InProcessApp) -> None:
    refused = _upload(locked_app)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert "token" in refused.json()["detail"]
    wrong = _upload(locked_app, headers={"Authorization": "Bearer nope-nope-nope"})
    assert wrong.status_code == 401
    accepted = _upload(locked_app, headers=BEARER)
    assert accepted.status_code == 202
    status_url = accepted.json()["status_url"]
    assert locked_app.client.get(status_url).status_code == 401
    assert locked_app.client.get(status_url, headers=BEARER).json()["status"] == "pending"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/results"),
        ("GET", "/api/images/x.1"),
        ("GET", "/images/x.1/thumbnail"),
        ("POST", "/classify"),
    ],
)
def test_reads_need_the_token(locked_app: InProcessApp, method: str, path: str) -> None:
    assert locked_app.client.request(method, path).status_code == 401


@pytest.mark.slow
def test_open_pages_stay_open(locked_service: TideflowProcess) -> None:
    # /healthz and /metrics come from the runner: the whole `tideflow run` is asked.
    for path in ("/", "/login", "/healthz", "/metrics", "/static/app.js", "/openapi.json"):
        assert httpx.get(f"{locked_service.base_url}{path}").status_code == 200, path


def test_results_page_sends_browsers_to_login(locked_app: InProcessApp) -> None:
    response = locked_app.client.get("/image-upload-results?label=tabby")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/image-upload-results%3Flabel%3Dtabby"


@pytest.mark.slow
def test_login_sets_a_strict_httponly_cookie(locked_service: TideflowProcess) -> None:
    # Against `tideflow run`: whether X-Forwarded-Proto is believed is Uvicorn's setting.
    with httpx.Client(base_url=locked_service.base_url) as browser:
        wrong = browser.post("/login", data={"token": "guess", "next": "/image-upload-results"})
        assert wrong.status_code == 401
        assert "Wrong token." in wrong.text
        assert "set-cookie" not in wrong.headers

        # X-Forwarded-Proto from a client that is no configured proxy changes nothing.
        right = browser.post(
            "/login",
            data={"token": TOKEN, "next": "/image-upload-results"},
            headers={"X-Forwarded-Proto": "https"},
        )
        assert right.status_code == 303
        assert right.headers["location"] == "/image-upload-results"
        cookie = right.headers["set-cookie"]
        assert "secure" not in cookie.lower()
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert TOKEN not in cookie
        assert browser.get("/image-upload-results").status_code == 200
        assert browser.get("/api/results").status_code == 200


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"],
)
def test_login_redirects_only_to_local_paths(locked_app: InProcessApp, target: str) -> None:
    response = locked_app.new_client().post("/login", data={"token": TOKEN, "next": target})
    assert response.status_code == 303
    assert response.headers["location"] == "/"
