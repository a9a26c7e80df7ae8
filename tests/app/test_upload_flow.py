"""Uploads become classified rows: the cat photo, 20 at once, files copied into the bucket."""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.app.support import CAT_LABELS, CHELSEA, COFFEE, PHOTOS, upload, wait_for_status
from tests.conftest import TideflowProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cat(shared_app: TideflowProcess) -> dict[str, Any]:
    """The cat photo, uploaded and classified: its 202 answer plus its final status."""
    response = upload(shared_app, CHELSEA.read_bytes(), "chelsea.png", content_type="image/png")
    assert response.status_code == 202, response.text
    accepted = response.json()
    return {"accepted": accepted, "status": wait_for_status(shared_app, accepted["status_url"])}


def test_upload_answers_202_with_a_status_url(cat: dict[str, Any]) -> None:
    accepted = cat["accepted"]
    assert set(accepted) == {"image_id", "image_name", "status_url"}
    assert accepted["image_name"] == "chelsea.png"
    assert accepted["status_url"] == f"/api/images/{accepted['image_id']}"


def test_cat_photo_gets_a_cat_class_in_its_top_5(cat: dict[str, Any]) -> None:
    status = cat["status"]
    assert status["status"] == "classified"
    assert status["error"] is None
    labels = [c["label"] for c in status["classifications"]]
    assert len(labels) == 5
    assert CAT_LABELS & set(labels), labels
    confidences = [c["confidence"] for c in status["classifications"]]
    assert confidences == sorted(confidences, reverse=True)
    assert status["model_id"].startswith("efficientnet_lite0@")


def test_results_api_lists_the_row(shared_app: TideflowProcess, cat: dict[str, Any]) -> None:
    image_id = cat["accepted"]["image_id"]
    # The label filter matches any of the top-k labels, in any case.
    label = cat["status"]["classifications"][2]["label"].upper()
    found = httpx.get(f"{shared_app.base_url}/api/results", params={"label": label}).json()
    row = next(r for r in found["rows"] if r["image_id"] == image_id)
    assert found["total"] >= 1
    assert row["status"] == "classified"
    assert row["image_name"] == "chelsea.png"
    assert (row["width"], row["height"]) == (451, 300)
    assert row["content_type"] == "image/png"
    assert row["size_bytes"] == CHELSEA.stat().st_size
    assert row["upload"].endswith("Z") or "+00:00" in row["upload"]
    assert row["latency_ms"] > 0
    other = httpx.get(f"{shared_app.base_url}/api/results", params={"label": "no such label"})
    assert other.json() == {"rows": [], "total": 0}


def test_results_page_shows_the_row(shared_app: TideflowProcess, cat: dict[str, Any]) -> None:
    image_id = cat["accepted"]["image_id"]
    page = httpx.get(f"{shared_app.base_url}/image-upload-results")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f'data-image-id="{image_id}"' in page.text
    assert "chelsea.png" in page.text
    assert f'data-label="{cat["status"]["classifications"][0]["label"]}"' in page.text


def test_thumbnail_is_a_small_jpeg(shared_app: TideflowProcess, cat: dict[str, Any]) -> None:
    image_id = cat["accepted"]["image_id"]
    response = httpx.get(f"{shared_app.base_url}/images/{image_id}/thumbnail")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content.startswith(b"\xff\xd8\xff")
    assert len(response.content) < 40_000


def test_query_command_reads_through_the_running_app(
    shared_app: TideflowProcess, cat: dict[str, Any]
) -> None:
    label = cat["status"]["classifications"][0]["label"]
    shown = shared_app.cli("query", "--results", "--label", label, "--limit", "5")
    assert shown.returncode == 0, shown.stderr
    assert "chelsea.png" in shown.stdout
    counted = shared_app.cli(
        "query", "SELECT count(*) AS n FROM {table} WHERE image_name = 'chelsea.png'"
    )
    assert counted.returncode == 0, counted.stderr
    assert "1 row(s)" in counted.stdout


def test_twenty_parallel_uploads_make_twenty_rows(shared_app: TideflowProcess) -> None:
    photos = [PHOTOS[i % len(PHOTOS)] for i in range(20)]

    def send(index: int) -> httpx.Response:
        photo = photos[index]
        return upload(shared_app, photo.read_bytes(), f"parallel-{index}{photo.suffix}")

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(send, range(20)))
    assert [r.status_code for r in responses] == [202] * 20
    ids = [r.json()["image_id"] for r in responses]
    assert len(set(ids)) == 20
    for response in responses:
        status = wait_for_status(shared_app, response.json()["status_url"])
        assert status["status"] == "classified", status

    rows = httpx.get(f"{shared_app.base_url}/api/results", params={"limit": 200}).json()["rows"]
    listed = [row["image_id"] for row in rows if row["image_id"] in set(ids)]
    assert sorted(listed) == sorted(ids)
    duplicates = shared_app.cli(
        "query", "SELECT image_id FROM {table} GROUP BY image_id HAVING count(*) > 1"
    )
    assert duplicates.returncode == 0, duplicates.stderr
    assert "0 row(s)" in duplicates.stdout


def test_file_copied_into_the_bucket_folder_is_classified(
    shared_app: TideflowProcess, tmp_path: os.PathLike[str]
) -> None:
    staging = os.path.join(tmp_path, "coffee-copy.png")
    shutil.copyfile(COFFEE, staging)
    target = shared_app.home / "image-bucket" / "dropped" / "coffee-copy.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, target)  # appears whole, as `mv` within one file system does

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = httpx.get(f"{shared_app.base_url}/api/results", params={"limit": 200}).json()["rows"]
        found = [row for row in rows if row["image_name"] == "coffee-copy.png"]
        if found:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the copied file was not classified:\n{shared_app.log()[-3000:]}")
    labels = [c["label"] for c in found[0]["classifications"]]
    assert {"espresso", "cup", "coffee mug"} & set(labels[:3]), labels
