"""The CSRF attack in a real browser: a page on another port of the same host (the same
*site*, so the SameSite=Strict login cookie goes along) posts an image to the app, or
submits the results page's correction form (a plain HTML form, no script needed)."""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.app.conftest import LOCKED_TOKEN
from tests.app.support import CHELSEA
from tests.conftest import TideflowProcess, free_port

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "Debian's chromium is not installed (make test installs it)", allow_module_level=True
    )

ATTACK_PAGE = """<!doctype html><title>cute cats</title><script>
const bytes = Uint8Array.from(atob("%(image)s"), c => c.charCodeAt(0));
const form = new FormData();
form.append("image_file", new Blob([bytes], {type: "image/png"}), "forged.png");
fetch("%(target)s/image-upload", {method: "POST", body: form, credentials: "include",
                                  mode: "no-cors"})
  .then(() => { document.title = "sent"; }, (e) => { document.title = "error " + e; });
</script>"""

# An unknown image: a request that got past the CSRF check would be answered 404.
FORM_ATTACK_PAGE = """<!doctype html><title>free cats</title>
<form method="post" action="%(target)s/image-upload-results/corrections">
  <input name="image_id" value="bm9uZQ.1"><input name="labels" value="csrf-from-another-port">
</form><script>document.forms[0].submit();</script>"""


@pytest.fixture(scope="module")
def attacker(locked_service: TideflowProcess) -> Iterator[str]:
    """An HTTP server on another port serving the attack page; its base URL."""
    pages = {
        "/": ATTACK_PAGE
        % {
            "image": base64.b64encode(CHELSEA.read_bytes()).decode(),
            "target": locked_service.base_url,
        },
        "/form": FORM_ATTACK_PAGE % {"target": locked_service.base_url},
    }

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in pages:  # the browser asks for /favicon.ico too
                self.send_error(404)
                return
            body = pages[self.path].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
            headless=True,
        )
        yield chromium
        chromium.close()


def test_upload_from_another_origin_is_refused(
    browser: Browser, locked_service: TideflowProcess, attacker: str, tmp_path: Path
) -> None:
    context = browser.new_context()
    page = context.new_page()
    # Log in through the login page: the browser now holds the HttpOnly session cookie.
    page.goto(f"{locked_service.base_url}/login")
    page.fill("#token", LOCKED_TOKEN)
    with page.expect_navigation():
        page.click("#login-form [type=submit]")
    assert any(c["name"] == "image_classification_session" for c in context.cookies())

    # The attack: another origin's page posts with the cookie.
    with page.expect_response(lambda r: r.url.endswith("/image-upload")) as forged:
        page.goto(f"{attacker}/")
    assert forged.value.status == 403, forged.value.text()

    # The results page's correction form, submitted by the other origin's page.
    form_url = f"{locked_service.base_url}/image-upload-results/corrections"
    with page.expect_response(form_url) as form:
        page.goto(f"{attacker}/form")
    page.wait_for_url(form_url)  # that navigation is over before the next one starts
    assert form.value.status == 403, form.value.text()
    # The same form on the app's own page passes the check (404: the image is unknown).
    page.goto(f"{locked_service.base_url}/image-upload-results")
    with page.expect_response(form_url) as own_form:
        page.evaluate(
            """() => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = "/image-upload-results/corrections";
                for (const [name, value] of [["image_id", "bm9uZQ.1"], ["labels", "own"]]) {
                    const input = document.createElement("input");
                    input.name = name;
                    input.value = value;
                    form.appendChild(input);
                }
                document.body.appendChild(form);
                form.submit();
            }"""
        )
    page.wait_for_url(form_url)
    assert own_form.value.status == 404, own_form.value.text()

    # The app's own page, in the same browser, still uploads (it sends X-CSRF-Token).
    photo = tmp_path / "own-page-cat.png"
    photo.write_bytes(CHELSEA.read_bytes())
    page.goto(f"{locked_service.base_url}/")
    with page.expect_response(lambda r: r.url.endswith("/image-upload")) as own:
        page.set_input_files("#file-input", str(photo))
    assert own.value.status == 202, own.value.text()
    context.close()
