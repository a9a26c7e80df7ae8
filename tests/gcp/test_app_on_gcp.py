"""The whole app with ``--stack gcp`` on emulators, with no hand-made bridge.

A real ``tideflow run`` against fake-gcs-server (Cloud Storage), Google's Pub/Sub emulator
and bqemulator (BigQuery). fake-gcs-server publishes OBJECT_FINALIZE for each new object
to the stream's topic itself, as a bucket notification does. Uploads through the page's
API and objects written straight into the bucket with the storage client both become
rows; the status API, the results API and the page read them.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from google.cloud import storage  # type: ignore[attr-defined]

from tests.app.support import CAT_LABELS, CHELSEA, upload, wait_for_status
from tests.conftest import TideflowProcess
from tests.gcp.conftest import PROJECT, EventingStorage
from tests.gcp.support import start_gcp_app


@pytest.fixture
def gcp_app(
    eventing_storage: Callable[[str, str], EventingStorage],
    bigquery_emulator: str,
    tmp_path: Path,
) -> Iterator[TideflowProcess]:
    app = start_gcp_app(eventing_storage, tmp_path / "home", dataset_prefix="image_classification")
    yield app
    assert app.stop() == 0


BQ_DISCOVERY = Path("/usr/lib/google-cloud-sdk/platform/bq/discovery_next/bigquery.json")
# Kept in step with docs/stacks/gcp.md (a test reads it there too).
README_QUERY = (
    "SELECT image_id, ANY_VALUE(image_name) AS image_name, "
    "ANY_VALUE(classifications[OFFSET(0)].label) AS top_label "
    "FROM image_classification.image_classification GROUP BY image_id"
)


def cloud_sdk(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """A Cloud SDK command with a throwaway configuration and a dummy token."""
    with tempfile.TemporaryDirectory() as config:
        token = Path(config) / "token"
        token.write_text("emulator-token")
        return subprocess.run(
            command,
            env={
                **os.environ,
                "CLOUDSDK_CONFIG": config,
                "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true",
                "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": str(token),
                "CLOUDSDK_CORE_PROJECT": PROJECT,
                **env,
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def test_the_readme_query_is_the_one_tested() -> None:
    readme = (Path(__file__).resolve().parents[2] / "docs/stacks/gcp.md").read_text()
    assert " ".join(README_QUERY.split()) in " ".join(readme.split())


def wait_for_rows(app: TideflowProcess, count: int, timeout: float = 90) -> dict[str, object]:
    import time

    deadline = time.monotonic() + timeout
    answer: dict[str, object] = {}
    while time.monotonic() < deadline:
        answer = httpx.get(f"{app.base_url}/api/results", timeout=10).json()
        if answer.get("total") == count:
            return answer
        time.sleep(0.3)
    raise AssertionError(f"results still {answer} after {timeout}s:\n{app.log()[-3000:]}")


def test_uploads_and_objects_written_to_the_bucket_are_classified_and_shown(
    gcp_app: TideflowProcess,
) -> None:
    assert "left to the Storage emulator" in gcp_app.log()
    assert "no IAM grants" in gcp_app.log()

    accepted = upload(gcp_app, CHELSEA.read_bytes(), "chelsea.png", content_type="image/png")
    assert accepted.status_code == 202, accepted.text
    status = wait_for_status(gcp_app, accepted.json()["status_url"], timeout=90)
    assert status["status"] == "classified", status
    assert CAT_LABELS & {c["label"] for c in status["classifications"]}

    # What `gsutil cp` or any other writer does: straight into the bucket.
    bucket = gcp_app.env["GCS_BUCKET_NAME"]
    client = storage.Client(project=PROJECT)
    client.bucket(bucket).blob("dropped/cat.png").upload_from_filename(
        str(CHELSEA), content_type="image/png"
    )
    # And what docs/stacks/gcp.md shows: `gcloud storage cp` pointed at the Storage emulator.
    copied = cloud_sdk(
        ["gcloud", "storage", "cp", str(CHELSEA), f"gs://{bucket}/copied/chelsea.png"],
        CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE=f"{os.environ['STORAGE_EMULATOR_HOST']}/storage/v1/",
    )
    assert copied.returncode == 0, copied.stderr
    results = wait_for_rows(gcp_app, 3)
    rows = results["rows"]
    assert isinstance(rows, list)
    assert len({r["image_id"] for r in rows}) == 3

    tabby = httpx.get(f"{gcp_app.base_url}/api/results", params={"label": "tabby"}).json()
    assert tabby["total"] == 3

    # docs/stacks/gcp.md's `bq query`, against bqemulator: each image once, with its top label.
    dataset = gcp_app.env["BIGQUERY_DATASET"]
    queried = cloud_sdk(
        [
            "bq",
            f"--api={os.environ['BIGQUERY_EMULATOR_HOST']}",
            f"--discovery_file={BQ_DISCOVERY}",
            f"--project_id={PROJECT}",
            "--format=json",
            "query",
            "--nouse_legacy_sql",
            README_QUERY.replace("image_classification.", f"{dataset}.", 1),
        ]
    )
    assert queried.returncode == 0, queried.stdout + queried.stderr
    answer = json.loads(queried.stdout)
    assert len(answer) == 3
    assert len({a["image_id"] for a in answer}) == 3
    assert {a["top_label"] for a in answer} <= CAT_LABELS
    page = httpx.get(f"{gcp_app.base_url}/image-upload-results").text
    assert "chelsea.png" in page

    too_big = upload(gcp_app, b"\x89PNG\r\n\x1a\n" + b"0" * (21 * 1024 * 1024), "big.png")
    assert too_big.status_code == 413
