"""The README's screenshot: three real photos uploaded through the page, then the results page.

Starts ``tideflow run`` on a free port with a throwaway ``TIDEFLOW_HOME`` (the local stack,
the default model), uploads scikit-image's chelsea.png, coffee.png and astronaut.png with
Debian's Chromium (Playwright), waits until each is classified and saves the results page
as a palette PNG:

    .venv/bin/python scripts/docs_screenshot.py [--out docs/images/results-page.png]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image
from playwright.sync_api import expect, sync_playwright

REPO = Path(__file__).resolve().parents[1]
PHOTO_NAMES = ("chelsea.png", "coffee.png", "astronaut.png")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu"]


def skimage_photos() -> list[Path]:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("scikit-image is not installed: make setup-dev")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return [data / name for name in PHOTO_NAMES]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(base_url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"tideflow run exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).json().get("consumers_ready"):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit(f"tideflow run was not ready after {timeout:.0f} s")


def capture(base_url: str, photos: list[Path], out: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.goto(f"{base_url}/")
        page.set_input_files("#file-input", [str(photo) for photo in photos])
        uploads = page.locator("ol#uploads > li.upload")
        expect(uploads).to_have_count(len(photos))
        for index in range(len(photos)):
            expect(uploads.nth(index)).to_have_attribute(
                "data-status", "classified", timeout=60_000
            )
        page.goto(f"{base_url}/image-upload-results")
        expect(page.locator("tr.result")).to_have_count(len(photos))
        # Every thumbnail loaded (a failed one is replaced by span.thumb-missing).
        page.wait_for_function(
            "[...document.images].every(image => image.complete && image.naturalWidth > 0)"
        )
        raw = out.with_suffix(".raw.png")
        page.screenshot(path=str(raw), full_page=True)
        browser.close()
    # A palette PNG: a fraction of the bytes, and the page is mostly flat colour.
    with Image.open(raw) as shot:
        shot.convert("RGB").quantize(colors=256).save(out, optimize=True)
    raw.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs/images/results-page.png")
    args = parser.parse_args()
    photos = skimage_photos()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "TIDEFLOW_HOME": home, "NUM_REPLICAS": "1", "API_TOKEN": ""}
        process = subprocess.Popen(
            [sys.executable, "-m", "tideflow", "run", "--port", str(port)], cwd=REPO, env=env
        )
        try:
            wait_ready(base_url, process)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            capture(base_url, photos, args.out)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    print(f"{args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
