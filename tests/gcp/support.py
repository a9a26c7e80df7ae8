"""What the whole-app gcp tests share."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from tests.app.support import make_app
from tests.conftest import TideflowProcess
from tests.gcp.conftest import PROJECT, EventingStorage


def start_gcp_app(
    eventing_storage: Callable[..., EventingStorage],
    home: Path,
    *,
    dataset_prefix: str,
    **env: str,
) -> TideflowProcess:
    """A started ``tideflow run --stack gcp`` of the app (one replica) on a bucket and a
    dataset of its own, with ``env``."""
    suffix = uuid.uuid4().hex[:8]
    bucket = f"images-{suffix}"
    eventing_storage(bucket, f"{bucket}-changes")
    app = make_app(
        home,
        STACK="gcp",
        GCP_PROJECT_ID=PROJECT,
        GCS_BUCKET_NAME=bucket,
        BIGQUERY_DATASET=f"{dataset_prefix}_{suffix}",
        **env,
    )
    app.start("--replicas", "1")
    return app
