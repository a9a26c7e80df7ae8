"""End to end: train on digits -> `tideflow run` with MODEL=that model.onnx -> upload a digit
-> its row has the right label. Then reclassifying stored images: `tideflow replay` re-emits
their events; rows are keyed by (object, version, model_id), so the same model adds nothing
and a new model adds a row beside the old one; the API and page show the current model's
rows unless asked for another's."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from image_classification.model import load_classifier
from tests.app.support import make_app, upload, wait_for_status
from tests.conftest import TideflowProcess

pytestmark = pytest.mark.slow


def _results(app: TideflowProcess, **params: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{app.base_url}/api/results", params=params).json()
    return answer


def _wait_total(app: TideflowProcess, total: int, **params: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = _results(app, **params)
        if answer["total"] == total:
            return answer
        time.sleep(0.2)
    raise AssertionError(f"{params}: {answer}\n{app.log()[-3000:]}")


def test_trained_model_serves_then_replay_adds_one_row_per_new_model(
    digits_model: tuple[Path, dict[str, Any]],
    pairs_model: tuple[Path, dict[str, Any]],
    digits_dir: Path,
    tmp_path: Path,
) -> None:
    digits, digits_card = digits_model
    pairs, pairs_card = pairs_model
    first_id = digits_card["model"]["model_id"]
    second_id = pairs_card["model"]["model_id"]
    # An image the model gets right in process (it is ~95% accurate, not 100%): the point is
    # that serving gives the same answer through the whole pipeline.
    classifier = load_classifier(digits / "model.onnx")
    image = next(
        data
        for n in range(1, 20)
        if classifier.classify(data := (digits_dir / "3" / f"{n}.jpg").read_bytes())[0].label == "3"
    )
    classifier.close()
    home = tmp_path / "home"
    app = make_app(home, MODEL=str(digits / "model.onnx"), TOP_K="3")
    app.start("--replicas", "1")
    try:
        response = upload(app, image, "three.jpg", content_type="image/jpeg")
        assert response.status_code == 202, response.text
        status_url = response.json()["status_url"]
        served = wait_for_status(app, status_url)
        assert served["status"] == "classified" and served["model_id"] == first_id
        assert served["classifications"][0]["label"] == "3"
        assert len(served["classifications"]) == 3

        refused = app.cli("replay")
        assert refused.returncode == 2 and "--prefix P, --since DATE, or --all" in refused.stderr
        none = app.cli("replay", "--since", "2999-01-01")
        assert none.returncode == 0, none.stderr
        assert "0 event(s) replayed" in none.stdout

        same = app.cli("replay", "--all")
        assert same.returncode == 0, same.stderr
        assert "1 event(s) replayed" in same.stdout and "running" in same.stdout
        time.sleep(3)  # processed again by now; the same model's row is not written twice
        assert _results(app, model_id="all")["total"] == 1
    finally:
        app.stop()

    app = make_app(home, MODEL=str(pairs / "model.onnx"), TOP_K="3")
    app.start("--replicas", "1")
    try:
        # Before the replay: the image's only row is the old model's.
        assert _results(app)["total"] == 0
        old = httpx.get(f"{app.base_url}{status_url}").json()
        assert old["status"] == "classified" and old["model_id"] == first_id

        replayed = app.cli("replay", "--prefix", "uploads/")
        assert replayed.returncode == 0, replayed.stderr
        current = _wait_total(app, 1)
        assert current["rows"][0]["model_id"] == second_id
        assert _results(app, model_id="all")["total"] == 2
        mine = _results(app, model_id=first_id)
        assert mine["total"] == 1 and mine["rows"][0]["classifications"][0]["label"] == "3"
        # The multi-label model's row holds every label above its threshold (and the top-k).
        assert len(current["rows"][0]["classifications"]) >= 3
        status = httpx.get(f"{app.base_url}{status_url}").json()
        assert status["model_id"] == second_id
        page = httpx.get(f"{app.base_url}/image-upload-results").text
        assert f'<option value="{first_id}"' in page and f"{second_id} (current)" in page
    finally:
        app.stop()
