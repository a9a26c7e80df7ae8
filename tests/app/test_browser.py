"""A real browser (Debian's Chromium, headless, driven by Playwright) uses the pages.

DOM hooks are documented at the top of ``processors/static/app.js``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, expect, sync_playwright

from tests.app.support import CAT_LABELS, CHELSEA
from tests.conftest import TideflowProcess

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--no-first-run",
    "--disable-component-update",
]

if not CHROMIUM.exists():
    pytest.skip(
        "Debian's chromium is not installed (make test installs it)", allow_module_level=True
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


def test_upload_through_the_page_then_see_the_results(
    browser: Browser, shared_app: TideflowProcess, tmp_path: Path
) -> None:
    photo = tmp_path / "browser-cat.png"
    shutil.copyfile(CHELSEA, photo)
    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    def console_error(message: ConsoleMessage) -> None:
        # Content-Security-Policy violations are reported here too.
        if message.type == "error":
            problems.append(message.text)

    page.on("console", console_error)

    page.goto(f"{shared_app.base_url}/")
    expect(page.locator("html")).to_have_class("js")
    page.set_input_files("#file-input", str(photo))
    row = page.locator("ol#uploads > li.upload").first
    expect(row).to_have_attribute("data-file-name", "browser-cat.png")
    expect(row).to_have_attribute("data-status", "classified", timeout=30_000)
    labels = row.locator("ol.labels > li[data-label]")
    expect(labels).to_have_count(5)
    shown = {labels.nth(i).get_attribute("data-label") for i in range(5)}
    assert CAT_LABELS & shown, shown
    image_id = row.get_attribute("data-image-id")
    assert image_id

    page.goto(f"{shared_app.base_url}/image-upload-results")
    result = page.locator(f'tr.result[data-image-id="{image_id}"]')
    expect(result).to_be_visible()
    expect(result).to_have_attribute("data-status", "classified")
    expect(result.locator(".image-name")).to_have_text("browser-cat.png")
    expect(result.locator("table.labels tr[data-label]")).to_have_count(5)
    # The thumbnail loaded (a failed one is replaced by span.thumb-missing).
    expect(result.locator("img.thumb")).to_have_js_property("complete", True)
    assert result.locator("img.thumb").evaluate("img => img.naturalWidth") > 0
    assert problems == []
    page.close()
