"""With API_TOKEN set: clients send a Bearer token, browsers log in for an HttpOnly cookie."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.app.support import CHELSEA, make_app, upload
from tests.conftest import TideflowProcess

pytestmark = pytest.mark.slow

TOKEN = "correct-horse-battery-staple"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def locked_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TideflowProcess]:
    # The HTTP service alone: uploads are journaled, nothing needs classifying here.
    app = make_app(tmp_path_factory.mktemp("auth") / "home", API_TOKEN=TOKEN)
    app.start("--only", "service", wait_consumers=False)
    yield app
    app.stop()
    app.close()


def test_upload_needs_the_token(locked_app: TideflowProcess) -> None:
    data = CHELSEA.read_bytes()
    refused = upload(locked_app, data, "cat.png")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert "token" in refused.json()["detail"]
    wrong = upload(locked_app, data, "cat.png", headers={"Authorization": "Bearer nope-nope-nope"})
    assert wrong.status_code == 401
    accepted = upload(locked_app, data, "cat.png", headers=BEARER)
    assert accepted.status_code == 202
    status_url = f"{locked_app.base_url}{accepted.json()['status_url']}"
    assert httpx.get(status_url).status_code == 401
    assert httpx.get(status_url, headers=BEARER).json()["status"] == "pending"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/results"),
        ("GET", "/api/images/x.1"),
        ("GET", "/images/x.1/thumbnail"),
        ("POST", "/classify"),
    ],
)
def test_reads_need_the_token(locked_app: TideflowProcess, method: str, path: str) -> None:
    assert httpx.request(method, f"{locked_app.base_url}{path}").status_code == 401


def test_open_pages_stay_open(locked_app: TideflowProcess) -> None:
    for path in ("/", "/login", "/healthz", "/metrics", "/static/app.js", "/openapi.json"):
        assert httpx.get(f"{locked_app.base_url}{path}").status_code == 200, path


def test_results_page_sends_browsers_to_login(locked_app: TideflowProcess) -> None:
    response = httpx.get(f"{locked_app.base_url}/image-upload-results?label=tabby")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/image-upload-results%3Flabel%3Dtabby"


def test_login_sets_a_strict_httponly_cookie(locked_app: TideflowProcess) -> None:
    with httpx.Client(base_url=locked_app.base_url) as browser:
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
def test_login_redirects_only_to_local_paths(locked_app: TideflowProcess, target: str) -> None:
    response = httpx.post(f"{locked_app.base_url}/login", data={"token": TOKEN, "next": target})
    assert response.status_code == 303
    assert response.headers["location"] == "/"
