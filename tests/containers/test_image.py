"""The serving image itself: what is in it, and what it says when something it needs is not
there. (It runs the local stack on a volume in test_compose, the cloud stacks in test_aws
and test_gcp.)"""

from __future__ import annotations

import json

import pytest

from tests.containers.podman import Podman

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

# docs/deploy.md, "The serving image": the image with the local, gcp and aws stacks.
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


def test_what_is_missing_is_said_in_one_line(podman: Podman, serving_image: str) -> None:
    # One container, three commands: a run with no ONNX export where TIDEFLOW_MODEL_CACHE
    # points (it stops, naming the export command), training and the torch engine (the
    # image leaves torch out).
    commands = (
        "tideflow run --replicas 1; echo exit=$?;"
        "python -m image_classification.train /tmp --out /tmp/model;"
        "python -m image_classification.model classify --engine torch /app/main.py"
    )
    said = podman.run_once(
        serving_image,
        "-c",
        commands,
        env={"TIDEFLOW_MODEL_CACHE": "/tmp/no-models", "TIDEFLOW_HOME": "/tmp/state"},
        entrypoint="sh",
    )
    output = said.stdout + said.stderr
    assert "exit=1" in said.stdout, output
    (line,) = [line for line in said.stderr.splitlines() if "no ONNX export" in line]
    assert "python -m image_classification.model export efficientnet_lite0" in line
    assert "the 'torch' extra (torch is not installed): pip install -e '.[torch]'" in line
    assert (
        "error: training needs the 'torch' extra (torch is not installed): pip install -e "
        "'.[torch]'" in said.stderr
    ), output
    assert "error: the torch engine needs the 'torch' extra (torch is not installed)" in output
