"""``build_flow(settings)`` builds the whole app, as often as asked, and its parts can be
swapped in-process (``flow.dependency_overrides``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi.testclient import TestClient

from image_classification.dependencies import ModelDep
from image_classification.model import Classification, ClassifiedImage, ImageInfo
from image_classification.processors.service import build_service
from tests.app.conftest import LOCKED_TOKEN
from tests.app.support import CHELSEA, InProcessApp, app_settings, in_process_app
from tideflow import Scope, dependency
from tideflow.dependencies import Resolver
from tideflow.exceptions import DependencyError

BEARER = {"Authorization": f"Bearer {LOCKED_TOKEN}"}


def _upload(app: InProcessApp, headers: dict[str, str] | None = None) -> httpx.Response:
    files = {"image_file": ("cat.png", CHELSEA.read_bytes(), "image/png")}
    return app.client.post("/image-upload", files=files, headers=headers)


def test_two_apps_in_one_process_keep_their_own_settings(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with (
        in_process_app(home, API_TOKEN=LOCKED_TOKEN, MAX_UPLOAD_MB="1", TOP_K="3") as locked,
        in_process_app(home, MAX_UPLOAD_MB="2", TOP_K="7") as open_app,
    ):
        assert locked.client.get("/api/results").status_code == 401
        assert open_app.client.get("/api/results").status_code == 200
        assert _upload(open_app).status_code == 202
        assert _upload(locked, headers=BEARER).status_code == 202
        big = {"image_file": ("big.png", b"\x89PNG\r\n\x1a\n" + bytes(1536 * 1024), "image/png")}
        assert locked.client.post("/image-upload", files=big, headers=BEARER).status_code == 413
        assert open_app.client.post("/image-upload", files=big).status_code == 202
        for app, top_k, limit in ((locked, 3, 1), (open_app, 7, 2)):
            page = app.client.get("/").text
            assert f'data-max-upload-mb="{limit}"' in page and f'data-top-k="{top_k}"' in page


@dependency(scope=Scope.REPLICA)
class SureModel:
    """A model that always sees a lighthouse (what a test swaps in for the real one)."""

    classifier = SimpleNamespace(model_id="sure@1", preprocess=SimpleNamespace(resize=224))

    def classify(self, image: bytes) -> ClassifiedImage:
        info = ImageInfo(format="PNG", width=451, height=300, mode="RGB")
        return ClassifiedImage(info=info, classifications=[Classification("lighthouse", 1.0)])


def test_a_test_swaps_the_model(tmp_path: Path) -> None:
    with in_process_app(tmp_path / "home") as app:
        app.flow.dependency_overrides[ModelDep] = SureModel
        files = {"image_file": ("cat.png", CHELSEA.read_bytes(), "image/png")}
        answer = app.client.post("/classify", files=files)
    assert answer.status_code == 200, answer.text
    assert answer.json()["classifications"] == [{"label": "lighthouse", "confidence": 1.0}]
    assert answer.json()["model_id"] == "sure@1"


def test_a_service_built_alone_says_how_to_build_the_app() -> None:
    service = build_service(app_settings())
    client = TestClient(service.build_app(resolver=Resolver()))
    with pytest.raises(DependencyError, match=r"bound by build_flow\(settings\)"):
        client.get("/api/results")
