"""BuildFlow's local image-classification walkthrough, run on tideflow unchanged.

``app/`` is the walkthrough's code as BuildFlow's templates repository shows it
(``walkthroughs/realtime-image-classification-local``) with ``buildflow`` renamed
``tideflow``; its ImageAI model loads a generated MobileNetV2 weights file placed under
the walkthrough's file name. The test runs it with ``tideflow run`` from a copy, uploads a
photo through its endpoint and reads the row back through its results page.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import duckdb
import httpx
import pytest
import skimage

from tests.buildflow_tutorial.support import results_page
from tests.conftest import TideflowProcess

APP = Path(__file__).parent / "app"
PHOTO = Path(skimage.__file__).parent / "data" / "chelsea.png"

pytestmark = pytest.mark.slow


@pytest.fixture
def tutorial(tmp_path: Path, mobilenet_weights: Path) -> TideflowProcess:
    project = tmp_path / "app"
    shutil.copytree(APP, project)
    shutil.copy(mobilenet_weights, project / "mobilenet_v2-b0353104.pth")
    return TideflowProcess(project_dir=project, home=tmp_path / "home")


def test_upload_is_classified_and_rendered_by_the_tutorials_own_endpoints(
    tutorial: TideflowProcess,
) -> None:
    app = tutorial
    try:
        app.start("--replicas", "1")
        index = httpx.get(f"{app.base_url}/", timeout=10)
        assert index.status_code == 200
        assert 'action="/image-upload"' in index.text

        files = {"image_file": ("chelsea.png", PHOTO.read_bytes(), "image/png")}
        uploaded = httpx.post(f"{app.base_url}/image-upload", files=files, timeout=30)
        assert uploaded.status_code == 200, uploaded.text
        assert (app.project_dir / "image_folder" / "chelsea.png").read_bytes() == PHOTO.read_bytes()

        page = results_page(app, "chelsea.png")
        # The outer table has the row's columns; its classifications cell is a table of
        # the top 5 labels with their confidences.
        headers = re.findall(r"<th>(\w*)</th>", page.split("<tbody>")[0])
        assert headers == ["", "image_name", "upload", "classifications"]  # the row's only
        inner = re.findall(r'<table border="1" class="dataframe table-auto">.*?</table>', page)
        assert len(inner) == 1
        assert inner[0].count("<tr>") == 5  # the top 5 (the header row has a style)
        assert str(app.project_dir / "image_folder" / "chelsea.png") in page
        assert app.stop() == 0
    finally:
        app.close()

    with duckdb.connect(str(app.project_dir / "buildflow.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT image_name, len(classifications) FROM image_classification"
        ).fetchall()
    assert rows == [(str(app.project_dir / "image_folder" / "chelsea.png"), 5)]
