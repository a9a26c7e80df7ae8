"""Every environment variable a recipe sets is one the app reads: a renamed setting fails here."""

from __future__ import annotations

import re
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.deploy.support import (
    DEPLOY,
    OVERLAYS,
    Manifest,
    app_setting_names,
    cloudformation_template,
    load_yaml,
    objects,
    settings_of,
)
from tideflow.runtime import metrics
from tideflow.types import SourceStats


@pytest.fixture(scope="module")
def app_names() -> set[str]:
    return app_setting_names()


def test_the_app_names_what_it_reads(app_names: set[str]) -> None:
    # A few the recipes rely on, from the settings model and from the providers' code.
    assert {
        "NUM_REPLICAS",
        "API_TOKEN",
        "STACK",
        "TIDEFLOW_HOME",
        "S3_BUCKET_NAME",
        "SQS_QUEUE_NAME",
        "POSTGRES_URL",
        "GCP_PROJECT_ID",
        "BIGQUERY_TABLE",
    } <= app_names
    assert "S3_BUCKET" not in app_names and "GCP_PROJECT" not in app_names


@pytest.mark.parametrize("overlay", ("base", *OVERLAYS))
def test_kubernetes_settings(
    rendered: dict[str, list[Manifest]], overlay: str, app_names: set[str]
) -> None:
    docs = rendered[overlay]
    names = set(settings_of(docs))
    for deployment in objects(docs, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            names |= {item["name"] for item in container.get("env", [])}
    assert names - app_names == set()


def test_ecs_settings(app_names: set[str]) -> None:
    names = set()
    for resource in cloudformation_template()["Resources"].values():
        if resource["Type"] == "AWS::ECS::TaskDefinition":
            for container in resource["Properties"]["ContainerDefinitions"]:
                names |= {item["Name"] for item in container.get("Environment", [])}
                names |= {_secret_name(item) for item in container.get("Secrets", [])}
    assert names and names - app_names == set()


def test_cloud_run_settings(app_names: set[str]) -> None:
    service = load_yaml(DEPLOY / "cloudrun" / "service.yaml")
    names = {
        item["name"]
        for container in service["spec"]["template"]["spec"]["containers"]
        for item in container["env"]
    }
    names |= set(load_yaml(DEPLOY / "cloudrun" / "consumers.env.yaml"))
    assert names - app_names == set()


def _secret_name(item: dict[str, Any]) -> str:
    """A container secret's name; conditional ones are ``Fn::If [cond, {Name...}, NoValue]``."""
    if "Fn::If" in item:
        item = item["Fn::If"][1]
    name: str = item["Name"]
    return name


def test_the_metrics_the_recipes_name_are_exported() -> None:
    """The gauges the READMEs and manifests name are the ones /metrics serves."""

    metrics.QUEUES.watch(
        "probe",
        lambda: SourceStats(pending=1, in_flight=0, done=0, oldest_pending_seconds=2.0),
        lambda: 0,
        lambda: 1,
    )
    try:
        exported = {sample.name for family in REGISTRY.collect() for sample in family.samples}
    finally:
        metrics.QUEUES.clear()
    named = {
        name
        for path in DEPLOY.rglob("*")
        if path.is_file() and path.suffix in {".md", ".yaml", ".yml", ".json"}
        for name in re.findall(r"\btideflow_[a-z_]+\b", path.read_text())
    }
    assert named, "the recipes name no tideflow metric"
    assert named - exported == set()
