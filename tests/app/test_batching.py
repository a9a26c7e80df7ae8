"""BATCH_SIZE=4 through ``tideflow run``: uploads arriving together are classified in shared
inference calls with the same labels as one at a time, and an image that cannot be decoded
(a decompression bomb) fails alone, not the images batched with it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from image_classification.model import load_classifier
from tests.app.support import PHOTOS, make_app, png_bomb, upload, wait_for_status

pytestmark = pytest.mark.slow


def test_batched_replicas_answer_as_one_at_a_time(tmp_path: Path) -> None:
    classifier = load_classifier()
    expected = {p.name: classifier.classify(p.read_bytes())[0].label for p in PHOTOS}
    classifier.close()
    app = make_app(tmp_path / "home", BATCH_SIZE="4", BATCH_MAX_DELAY_MS="50")
    app.start("--replicas", "1")
    try:
        files = [(p.name, p.read_bytes()) for p in PHOTOS * 2]
        files.insert(5, ("bomb.png", png_bomb()))

        def send(item: tuple[str, bytes]) -> httpx.Response:
            return upload(app, item[1], item[0])

        with ThreadPoolExecutor(len(files)) as pool:
            responses = list(pool.map(send, files))
        assert [r.status_code for r in responses] == [202] * len(files), responses[0].text
        for (name, _), response in zip(files, responses, strict=True):
            status = wait_for_status(app, response.json()["status_url"])
            if name == "bomb.png":
                assert status["status"] == "failed", status
                continue
            assert status["status"] == "classified", status
            assert status["classifications"][0]["label"] == expected[name], (name, status)
    finally:
        app.stop()
