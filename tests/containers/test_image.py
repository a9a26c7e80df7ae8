"""The serving image itself: what is in it, how it runs the local stack, where it keeps its
state, and what it says when something it needs is not there."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.app.support import CAT_LABELS, CHELSEA, upload, wait_for_status
from tests.containers.podman import Podman

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

# README, "Deploy and scale": the image with the local, gcp and aws stacks.
MAX_IMAGE_BYTES = 600_000_000
NOT_IN_THE_IMAGE = (
    "torch",
    "torchvision",
    "triton",
    "nvidia",
    "imageai",
    "keras",
    "ai_edge_litert",
)


def test_the_image_serves_without_torch_as_a_user_of_its_own(
    podman: Podman, serving_image: str
) -> None:
    (inspected,) = json.loads(podman("image", "inspect", serving_image).stdout)
    assert inspected["Size"] <= MAX_IMAGE_BYTES, f"{inspected['Size']:,} bytes"
    config = inspected["Config"]
    assert config["User"] == "tideflow"
    assert config["Entrypoint"] == ["tideflow"]
    assert config["Cmd"] == ["run", "--host", "0.0.0.0", "--port", "8000"]
    assert "/data" in config["Volumes"] and "TIDEFLOW_HOME=/data" in config["Env"]
    assert "/healthz" in " ".join(inspected["Healthcheck"]["Test"])  # Docker's format keeps it
    probe = (
        "import importlib.util as u, sys;"
        f"print([m for m in {NOT_IN_THE_IMAGE!r} if u.find_spec(m)]);"
        "import onnxruntime, google.cloud.pubsub, boto3, psycopg"
    )
    found = podman.run_once(serving_image, "-c", probe, env={}, entrypoint="python")
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "[]"


def test_the_local_stack_keeps_its_state_in_the_volume(podman: Podman, serving_image: str) -> None:
    volume = podman.volume()
    app = podman.start(serving_image, env={}, volume=volume)  # the image's CMD: `run`
    app.wait_ready(consumers=True)
    assert podman("exec", app.id, "id", "-u").stdout.strip() == "10001"
    assert podman("healthcheck", "run", app.id, check=False).returncode == 0

    accepted = upload(app, CHELSEA.read_bytes(), "chelsea.png", content_type="image/png")
    assert accepted.status_code == 202, accepted.text
    status = wait_for_status(app, accepted.json()["status_url"], timeout=60)
    assert status["status"] == "classified", status
    assert CAT_LABELS & {c["label"] for c in status["classifications"]}
    assert app.stop(grace=30) < 25
    assert app.state()["ExitCode"] == 0

    # A new container on the same volume: the bucket, the journal and the table are there.
    again = podman.start(serving_image, env={}, volume=volume)
    again.wait_ready(consumers=False)
    results = httpx.get(f"{again.base_url}/api/results", timeout=30).json()
    assert results["total"] == 1 and results["rows"][0]["image_name"] == "chelsea.png"


def test_what_is_missing_is_said_in_one_line(podman: Podman, serving_image: str) -> None:
    # No ONNX export where TIDEFLOW_MODEL_CACHE points: the run stops, naming the command.
    run = podman.run_once(
        serving_image,
        "run",
        "--replicas",
        "1",
        env={"TIDEFLOW_MODEL_CACHE": "/tmp/no-models", "TIDEFLOW_HOME": "/tmp/state"},
    )
    assert run.returncode == 1, run.stdout + run.stderr
    (line,) = [line for line in run.stderr.splitlines() if "no ONNX export" in line]
    assert "python -m image_classification.model export efficientnet_lite0" in line
    assert "the 'torch' extra (torch is not installed): pip install -e '.[torch]'" in line

    # Training and the torch engine need torch, which the image leaves out.
    commands = (
        "python -m image_classification.train /tmp --out /tmp/model;"
        "python -m image_classification.model classify --engine torch /app/main.py"
    )
    said = podman.run_once(serving_image, "-c", commands, env={}, entrypoint="sh")
    assert "error: training needs the 'torch' extra (torch is not installed): pip install" in (
        said.stderr
    ), said.stderr
    assert "error: the torch engine needs the 'torch' extra (torch is not installed)" in (
        said.stderr + said.stdout
    ), said.stdout + said.stderr
