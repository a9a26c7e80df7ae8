"""BuildFlow's gcp image-classification walkthrough, imported and wired up on tideflow.

``gcp_app/`` is the walkthrough's code (``walkthroughs/realtime-image-classification-gcp``
in BuildFlow's templates repository) with ``buildflow`` renamed ``tideflow``. Running it
end to end needs Cloud Storage notifications through Pub/Sub and a ``bigquery.Client()``
with credentials; here it is imported in a subprocess (its package is called
``image_classification`` like ours) and its consumer runs on a GCS event.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

APP = Path(__file__).parent / "gcp_app"

CHECK = """
import io, json, datetime
from PIL import Image
import main
from image_classification import primitives
from image_classification.processors.consumer import classify_image
from image_classification.processors.service import service
from tideflow.dependencies import Resolver
from tideflow.types.gcp import GCSFileChangeEvent

class Reader:
    def read_bytes(self, key, *, version=None):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
        return buffer.getvalue()

class Prediction:
    def classifyImage(self, path, result_count):
        assert open(path, "rb").read(4) == b"\\x89PNG"
        return ["tabby", "tiger cat"], [70.0, 20.0]

class Model:
    prediction = Prediction()

event = GCSFileChangeEvent(
    file_path="cat.png", bucket=primitives.bucket.bucket_name, version="3", size=10,
    event_time=datetime.datetime.now(datetime.UTC), reader=Reader(),
)
row = classify_image(event, Model())
routes = sorted(r.path for r in service.build_app(resolver=Resolver()).routes)
print(json.dumps({
    "consumers": [c.name for c in main.app.consumers],
    "services": [s.service_id for s in main.app.services],
    "table_id": primitives.table.primitive_id(),
    "force_destroy": primitives.bucket.force_destroy,
    "row": [row.image_name, [c.classification for c in row.classifications]],
    "routes": [r for r in routes if r.startswith("/image") or r == "/"],
}))
"""


@pytest.mark.slow
def test_the_gcp_walkthrough_imports_and_its_consumer_runs() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "GCP_PROJECT_ID": "walkthrough-project",
        "STACK": "local",  # the walkthrough's FlowOptions(stack=...) default
    }
    env.pop("GCP_SERVICE_ACCOUNT_INFO", None)
    done = subprocess.run(
        [sys.executable, "-c", CHECK],
        cwd=APP,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {
        "consumers": ["classify_image"],
        "services": ["image-classification"],
        "table_id": "walkthrough-project.buildflow_image_classification_walkthrough"
        ".image_classification",
        "force_destroy": True,
        "row": ["cat.png", ["tabby", "tiger cat"]],
        "routes": ["/", "/image-upload", "/image-upload-results"],
    }
