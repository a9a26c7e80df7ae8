"""Corrections: marked on the results page or through the API (token required when set),
stored in their own table, shown beside the model's labels, and trained on with
``python -m image_classification.train --from-corrections`` (images read from the bucket)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app.support import make_app, upload
from tests.conftest import REPO

pytestmark = pytest.mark.slow

TOKEN = "correct-horse-battery"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_corrections_are_stored_shown_and_trained_on(
    digits_model: tuple[Path, dict[str, Any]],
    digits_dir: Path,
    train_caches: dict[str, Path],
    tmp_path: Path,
) -> None:
    digits, _ = digits_model
    app = make_app(tmp_path / "home", MODEL=str(digits / "model.onnx"), API_TOKEN=TOKEN)
    app.start("--replicas", "1")
    try:
        ids = {}
        for digit in ("1", "7"):
            for n in (1, 2, 3):
                data = (digits_dir / digit / f"{n}.jpg").read_bytes()
                answer = upload(app, data, f"{digit}-{n}.jpg", headers=AUTH).json()
                ids[(digit, n)] = answer["image_id"]
        base = app.base_url
        for image_id in ids.values():
            _wait(app, image_id)

        first = ids[("1", 1)]
        url = f"{base}/api/images/{first}/corrections"
        assert httpx.post(url, json={"labels": ["one"]}).status_code == 401
        assert httpx.post(url, json={"labels": ["a|b"]}, headers=AUTH).status_code == 400
        missing = f"{base}/api/images/bm9uZQ.1/corrections"
        assert httpx.post(missing, json={"labels": ["x"]}, headers=AUTH).status_code == 404
        stored = httpx.post(url, json={"labels": [" one ", "one"]}, headers=AUTH)
        assert stored.status_code == 200, stored.text
        assert stored.json()["labels"] == ["one"]
        assert stored.json()["model_labels"][0] == "1"
        assert httpx.get(url, headers=AUTH).json()["labels"] == ["one"]
        # The page's form (no JavaScript): stored, then back to the page, shown there.
        login = httpx.post(f"{base}/login", data={"token": TOKEN, "next": "/"})
        cookies = dict(login.cookies)
        form = {"image_id": ids[("7", 1)], "labels": "seven", "next": "/image-upload-results"}
        form_url = f"{base}/image-upload-results/corrections"
        assert httpx.post(form_url, data=form).status_code == 401
        # A browser's form post from another origin carries the cookie too: refused.
        forged = httpx.post(form_url, data=form, cookies=cookies, headers={"Origin": "null"})
        assert forged.status_code == 403
        # The page's own form: the browser says where it comes from.
        own = {"Origin": base, "Sec-Fetch-Site": "same-origin"}
        sent = httpx.post(form_url, data=form, cookies=cookies, headers=own)
        assert sent.status_code == 303 and sent.headers["location"] == "/image-upload-results"
        page = httpx.get(f"{base}/image-upload-results", cookies=cookies).text
        assert 'data-corrected="seven"' in page and 'data-corrected="one"' in page
        for (digit, _n), image_id in ids.items():
            label = "one" if digit == "1" else "seven"
            r = httpx.post(
                f"{base}/api/images/{image_id}/corrections", json={"labels": [label]}, headers=AUTH
            )
            assert r.status_code == 200

        # Train on them while the app runs (it holds the DuckDB file: read through it).
        out = tmp_path / "from-corrections"
        trained = subprocess.run(
            [
                sys.executable,
                "-m",
                "image_classification.train",
                "--from-corrections",
                "--out",
                str(out),
                "--image-size",
                "112",
                "--augment",
                "0",
                "--cache",
                str(train_caches["embeddings"]),
            ],
            cwd=REPO,
            env=app.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert trained.returncode == 0, trained.stdout + trained.stderr
        card = json.loads((out / "card.json").read_text())
        assert card["labels"] == ["one", "seven"] and card["data"]["images"] == 6
        assert card["data"]["origin"] == "corrections"
        assert "6 corrected image(s)" in trained.stderr
    finally:
        app.stop()
    # With the app stopped the command reads the warehouse itself.
    again = subprocess.run(
        [
            sys.executable, "-m", "image_classification.train", "--from-corrections",
            "--out", str(out), "--force", "--image-size", "112", "--augment", "0",
            "--cache", str(train_caches["embeddings"]),
        ],
        cwd=REPO, env=app.env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads((out / "card.json").read_text())["data"]["images"] == 6


def _wait(app: Any, image_id: str) -> None:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = httpx.get(f"{app.base_url}/api/images/{image_id}", headers=AUTH).json()
        if status["status"] == "classified":
            return
        time.sleep(0.2)
    raise AssertionError(f"{image_id} not classified:\n{app.log()[-3000:]}")
