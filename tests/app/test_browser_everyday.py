"""Chromium, cut off from every network but the app's: /docs lists the endpoints, and
/stats draws its charts (a screenshot is kept under the test's temp dir).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect, sync_playwright

from tests.app.support import CHELSEA, upload, wait_for_status
from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import TideflowProcess

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            # No proxy, no background traffic: only requests the page makes can leave.
            args=[*CHROMIUM_ARGS, "--no-proxy-server"],
            headless=True,
        )
        yield chromium
        chromium.close()


class OfflinePage:
    """A page whose requests to anything but 127.0.0.1 fail (and are recorded)."""

    def __init__(self, browser: Browser) -> None:
        self.page: Page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.outside: list[str] = []
        self.problems: list[str] = []
        self.page.route("**/*", self._route)
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))
        self.page.on("console", self._console)

    def _route(self, route: Route) -> None:
        host = urllib.parse.urlsplit(route.request.url).hostname
        if host == "127.0.0.1":
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort("internetdisconnected")

    def _console(self, message: ConsoleMessage) -> None:
        # Content-Security-Policy violations are reported here too.
        if message.type == "error":
            self.problems.append(message.text)


def test_api_docs_work_offline_under_the_pages_csp(
    browser: Browser, shared_app: TideflowProcess
) -> None:
    offline = OfflinePage(browser)
    response = offline.page.goto(f"{shared_app.base_url}/docs")
    assert response is not None and response.ok
    assert "script-src" not in (response.headers.get("content-security-policy") or "x")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    operations = offline.page.locator(".opblock .opblock-summary-path")
    expect(operations.first).to_be_visible(timeout=15_000)
    paths = set(operations.all_inner_texts())
    assert {"/image-upload", "/api/results", "/api/results.csv"} <= {
        p.replace("\u200b", "") for p in paths
    }, paths
    assert offline.outside == []
    assert offline.problems == []
    offline.page.close()


def test_stats_page_renders_its_charts(
    browser: Browser, shared_app: TideflowProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    photo = CHELSEA.read_bytes()
    for name in ("stats-cat-1.png", "stats-cat-2.png"):
        accepted = upload(shared_app, photo, name)
        assert accepted.status_code == 202, accepted.text
        wait_for_status(shared_app, accepted.json()["status_url"])
    offline = OfflinePage(browser)
    offline.page.goto(f"{shared_app.base_url}/")
    offline.page.click("#nav-stats")
    expect(offline.page).to_have_url(f"{shared_app.base_url}/stats")
    bars = offline.page.locator("#top-labels svg g.bar rect.bar-rect")
    expect(bars.first).to_be_visible()
    assert bars.first.bounding_box()["width"] > 100  # type: ignore[index]
    expect(offline.page.locator("#per-minute svg rect.column").first).to_be_visible()
    expect(offline.page.locator("#latency svg polyline.series-p95")).to_have_count(1)
    expect(offline.page.locator("#models code").first).to_contain_text("efficientnet_lite0@")
    shot = tmp_path_factory.mktemp("stats") / "stats.png"
    offline.page.screenshot(path=str(shot), full_page=True)
    # Drawn, not blank: the screenshot has more than a handful of distinct colours.
    from PIL import Image

    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 20
    print(f"stats screenshot: {shot}")
    assert offline.outside == []
    assert offline.problems == []
    offline.page.close()
