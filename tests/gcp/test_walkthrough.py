"""BuildFlow's gcp image-classification walkthrough, run end to end on the emulators.

``tests/buildflow_tutorial/gcp_app`` is the walkthrough's code
(``walkthroughs/realtime-image-classification-gcp`` in BuildFlow's templates repository)
with ``buildflow`` renamed ``tideflow``; its ImageAI model loads a generated MobileNetV2
weights file under the walkthrough's file name. A real ``tideflow run`` of a copy serves
its page; an upload through its own endpoint lands in fake-gcs-server, which publishes
OBJECT_FINALIZE to the Pub/Sub emulator; its consumer writes the row to bqemulator; and its
results endpoint reads the row back with a plain ``bigquery.Client()`` and pandas.

A plain ``bigquery.Client()`` finds its endpoint in ``BIGQUERY_EMULATOR_HOST`` and its
credentials where Application Default Credentials are looked for; the test writes an ADC
file holding an access token that never expires (the emulators check no token), as a
developer's machine would hold one from ``gcloud auth application-default login``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from google.cloud import bigquery

from tests.app.support import CHELSEA
from tests.buildflow_tutorial.support import results_page
from tests.conftest import TideflowProcess
from tests.gcp.conftest import EventingStorage

WALKTHROUGH = Path(__file__).resolve().parents[1] / "buildflow_tutorial" / "gcp_app"
# The walkthrough's page runs ``SELECT * FROM project.dataset.table`` unquoted, which
# BigQuery accepts for a project with dashes but bqemulator does not parse
# ("syntax error at or near '-'"): its project here has none.
PROJECT = "tideflowwalkthrough"
# The walkthrough's names: primitives.py derives them from GCP_PROJECT_ID.
BUCKET = f"{PROJECT}-image-classification"
TABLE = f"{PROJECT}.buildflow_image_classification_walkthrough.image_classification"

pytestmark = pytest.mark.slow


def application_default_credentials(path: Path) -> Path:
    """An ADC file (authorized_user, as gcloud writes it) with a token valid for ever."""
    path.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "emulator",
                "client_secret": "emulator",
                "refresh_token": "emulator",
                "token": "emulator-token",
                "expiry": "2999-01-01T00:00:00Z",
            }
        )
    )
    return path


@pytest.fixture
def walkthrough(
    eventing_storage: Callable[..., EventingStorage],
    bigquery_emulator: str,
    mobilenet_weights: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[TideflowProcess]:
    project = tmp_path / "walkthrough"
    shutil.copytree(WALKTHROUGH, project)
    shutil.copy(mobilenet_weights, project / "mobilenet_v2-b0353104.pth")
    eventing_storage(BUCKET, f"{BUCKET}-changes", PROJECT)  # the stream's default id
    # For the app and for the test's own bigquery.Client().
    monkeypatch.setenv("GCP_PROJECT_ID", PROJECT)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    monkeypatch.setenv(
        "GOOGLE_APPLICATION_CREDENTIALS",
        str(application_default_credentials(tmp_path / "adc.json")),
    )
    app = TideflowProcess(project_dir=project, home=tmp_path / "home")
    try:
        yield app
    finally:
        app.close()


def test_the_gcp_walkthrough_classifies_an_upload_and_renders_it(
    walkthrough: TideflowProcess,
) -> None:
    app = walkthrough
    applied = app.cli("apply", "--yes")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    app.start("--replicas", "1")

    index = httpx.get(f"{app.base_url}/", timeout=10)
    assert index.status_code == 200
    assert 'action="/image-upload"' in index.text

    files = {"image_file": ("chelsea.png", CHELSEA.read_bytes(), "image/png")}
    uploaded = httpx.post(f"{app.base_url}/image-upload", files=files, timeout=30)
    assert uploaded.status_code == 200, uploaded.text

    page = results_page(app, "chelsea.png")
    # pandas' table of the row's columns (and tideflow's row id, which BuildFlow's tables
    # lack); the classifications cell is a table of the top 5.
    headers = re.findall(r"<th>(\w*)</th>", page.split("<tbody>")[0])
    assert headers == ["", "image_name", "upload", "classifications", "_tideflow_row_id"]
    inner = re.findall(r'<table border="1" class="dataframe table-auto">.*?</table>', page)
    assert len(inner) == 1
    assert inner[0].count("<tr>") == 5
    assert re.findall(r"<th>(\w+)</th>", inner[0]) == ["classification", "confidence"]
    assert app.stop() == 0

    # The walkthrough's own SQL, as its page runs it: one row, for the uploaded name.
    rows = list(bigquery.Client().query(f"SELECT image_name FROM {TABLE}").result())
    assert [row.image_name for row in rows] == ["chelsea.png"]
