"""The whole app with ``--stack gcp``: a real ``tideflow run`` against the Cloud Storage and
BigQuery emulators, with the in-memory Pub/Sub standing in for the service (no emulator
installs here). Upload -> object in the bucket -> notification -> row in BigQuery -> shown.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.app.support import CAT_LABELS, CHELSEA, make_app, upload, wait_for_status
from tests.conftest import TideflowProcess


@pytest.fixture
def gcp_app(gcs_emulator: str, bigquery_emulator: str, tmp_path: Path) -> Iterator[TideflowProcess]:
    suffix = uuid.uuid4().hex[:8]
    app = make_app(
        tmp_path / "home",
        STACK="gcp",
        TIDEFLOW_GCP_FAKE_PUBSUB="1",
        GCS_BUCKET_NAME=f"images-{suffix}",
        BIGQUERY_DATASET=f"image_classification_{suffix}",
    )
    app.start("--replicas", "1")
    yield app
    assert app.stop() == 0


def test_upload_is_classified_into_bigquery_and_shown(gcp_app: TideflowProcess) -> None:
    accepted = upload(gcp_app, CHELSEA.read_bytes(), "chelsea.png", content_type="image/png")
    assert accepted.status_code == 202, accepted.text
    status = wait_for_status(gcp_app, accepted.json()["status_url"], timeout=90)
    assert status["status"] == "classified", status
    assert CAT_LABELS & {c["label"] for c in status["classifications"]}

    results = httpx.get(f"{gcp_app.base_url}/api/results", params={"label": "tabby"}).json()
    assert results["total"] == 1
    assert results["rows"][0]["image_name"] == "chelsea.png"
    page = httpx.get(f"{gcp_app.base_url}/image-upload-results").text
    assert "chelsea.png" in page

    too_big = upload(gcp_app, b"\x89PNG\r\n\x1a\n" + b"0" * (21 * 1024 * 1024), "big.png")
    assert too_big.status_code == 413
