"""deploy/cloudrun: the service YAML read as `gcloud run services replace` reads it, offline."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.support import APP_PORT, DEPLOY, load_yaml, readme_commands, stream_names

SERVICE_YAML = DEPLOY / "cloudrun" / "service.yaml"
CONSUMERS_ENV = DEPLOY / "cloudrun" / "consumers.env.yaml"
# Cloud Run's revision fields that a Kubernetes pod spec lacks.
KNATIVE_FIELDS = ("containerConcurrency", "timeoutSeconds")

# The conversion `gcloud run services replace` makes (surface/run/services/replace.py):
# YAML to Cloud Run's v1 API message, failing on any field the API does not have. Run in
# its own process: the SDK's library path would shadow this venv's packages.
CLOUD_RUN_MESSAGE = """
import sys, yaml
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/third_party"]
from googlecloudsdk.api_lib.util import apis, messages
service = yaml.safe_load(open(sys.argv[2]))
messages.DictToMessageWithErrorCheck(service, apis.GetMessagesModule("run", "v1").Service)
"""


@pytest.fixture(scope="module")
def sdk_lib() -> Path:
    gcloud = shutil.which("gcloud")
    assert gcloud, "the Google Cloud CLI is missing (make setup-dev installs it)"
    return Path(gcloud).resolve().parent.parent / "lib"


@pytest.fixture(scope="module")
def service() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(SERVICE_YAML)
    return document


def _as_cloud_run_message(sdk_lib: Path, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLOUD_RUN_MESSAGE, str(sdk_lib), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_service_is_a_cloud_run_v1_service(
    sdk_lib: Path, service: dict[str, Any], tmp_path: Path
) -> None:
    result = _as_cloud_run_message(sdk_lib, SERVICE_YAML)
    assert result.returncode == 0, result.stderr
    broken = tmp_path / "service.yaml"
    broken.write_text(SERVICE_YAML.read_text().replace("startupProbe:", "startProbe:"))
    result = _as_cloud_run_message(sdk_lib, broken)
    assert result.returncode != 0 and "startProbe" in result.stderr


def test_service_pod_spec_is_valid_kubernetes(service: dict[str, Any]) -> None:
    template = service["spec"]["template"]
    pod_spec = {k: v for k, v in template["spec"].items() if k not in KNATIVE_FIELDS}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": pod_spec}
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)


def test_annotations_are_ones_gcloud_knows(sdk_lib: Path, service: dict[str, Any]) -> None:
    # The Google Cloud CLI names every Cloud Run annotation it reads or writes as a constant.
    sources = "".join(
        path.read_text() for path in (sdk_lib / "googlecloudsdk" / "api_lib" / "run").glob("*.py")
    )
    annotations = {
        **service["metadata"]["annotations"],
        **service["spec"]["template"]["metadata"]["annotations"],
    }
    unknown = [key for key in annotations if f"'{key}'" not in sources]
    assert unknown == []


def test_service_runs_the_http_role(service: dict[str, Any]) -> None:
    (container,) = service["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[:3] == ["run", "--only", "service"]
    assert int(args[args.index("--port") + 1]) == APP_PORT
    assert [port["containerPort"] for port in container["ports"]] == [APP_PORT]
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": APP_PORT}
    # A full disk makes /healthz 503; restarting would not free it.
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": APP_PORT}
    env = {item["name"]: item for item in container["env"]}
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts == {env["TIDEFLOW_HOME"]["value"]}
    assert "valueFrom" in env["API_TOKEN"]  # a secret, never a literal


def test_consumers_share_the_service_stack_settings(
    service: dict[str, Any], tmp_path: Path
) -> None:
    (container,) = service["spec"]["template"]["spec"]["containers"]
    service_env = {item["name"]: item.get("value") for item in container["env"]}
    consumers_env = load_yaml(CONSUMERS_ENV)
    assert all(isinstance(value, str) for value in consumers_env.values())
    stack = ("STACK", "GCP_PROJECT_ID", "BIGQUERY_DATASET", "BIGQUERY_TABLE", "TIDEFLOW_HOME")
    assert {name: consumers_env[name] for name in stack} == {
        name: service_env[name] for name in stack
    }
    # The app derives a subscription from them (checked against KEDA's in test_kubernetes).
    assert stream_names(consumers_env, tmp_path)["subscription"].endswith("-changes")


def test_readme_worker_pool_runs_the_consumers() -> None:
    (deploy,) = [
        argv
        for _, argv in readme_commands("gcloud")
        if argv[1:5] == ["beta", "run", "worker-pools", "deploy"]
    ]
    flags = dict(token.split("=", 1) for token in deploy if token.startswith("--") and "=" in token)
    assert flags["--args"].split(",")[:3] == ["run", "--only", "consumers"]
    assert (DEPLOY.parent / flags["--env-vars-file"]) == CONSUMERS_ENV
    assert "mount-path=" + load_yaml(CONSUMERS_ENV)["TIDEFLOW_HOME"] in flags["--add-volume-mount"]
