"""deploy/kubernetes: rendered with kustomize, validated offline, consistent with the app.

Nothing here talks to a cluster: the manifests are rendered by ``kubectl kustomize``,
built-in kinds validated against Kubernetes' schemas (``kubernetes-validate``, strict),
KEDA's objects against models generated from KEDA's CRDs, and names against the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from cloudcoil.models.keda import v1alpha1 as keda

from tests.deploy.support import (
    APP_PORT,
    MIN_STOP_SECONDS,
    NAMESPACE,
    OVERLAYS,
    Manifest,
    objects,
    one,
    settings_of,
    stream_names,
)

# The oldest Kubernetes the README promises, and the newest schemas the validator ships.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
KEDA_MODELS = {
    "ScaledObject": keda.ScaledObject,
    "TriggerAuthentication": keda.TriggerAuthentication,
}
SERVICE, CONSUMERS = "image-classification-service", "image-classification-consumers"


def test_base_and_overlays_render(rendered: dict[str, list[Manifest]]) -> None:
    kinds = {doc["kind"] for doc in rendered["base"]}
    assert kinds == {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    }
    for overlay in OVERLAYS:
        assert {doc["kind"] for doc in rendered[overlay]} == kinds | set(KEDA_MODELS)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_objects_are_valid_kubernetes(
    rendered: dict[str, list[Manifest]], version: str
) -> None:
    for name, docs in rendered.items():
        for doc in docs:
            if doc["kind"] in KEDA_MODELS:
                continue
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{name}: {doc['kind']} {doc['metadata']['name']}: {exc}")


def test_strict_validation_rejects_an_unknown_field(rendered: dict[str, list[Manifest]]) -> None:
    deployment = one(rendered["base"], "Deployment", CONSUMERS)
    container = dict(deployment["spec"]["template"]["spec"]["containers"][0])
    container["readinesProbe"] = container.pop("readinessProbe")
    broken = {
        **deployment,
        "spec": {
            **deployment["spec"],
            "template": {
                **deployment["spec"]["template"],
                "spec": {**deployment["spec"]["template"]["spec"], "containers": [container]},
            },
        },
    }
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_objects_match_their_crds(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    for kind, model in KEDA_MODELS.items():
        (doc,) = objects(rendered[overlay], kind)
        parsed = model.model_validate(doc)
        # The models ignore unknown fields: whatever does not come back was not in the CRD.
        assert (
            _dropped(doc, parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")) == []
        )


def test_keda_check_rejects_an_unknown_field(rendered: dict[str, list[Manifest]]) -> None:
    doc = objects(rendered["aws"], "ScaledObject")[0]
    broken = {**doc, "spec": {**doc["spec"], "minReplicas": 1}}
    parsed = keda.ScaledObject.model_validate(broken)
    dropped = _dropped(broken, parsed.model_dump(by_alias=True, exclude_unset=True, mode="json"))
    assert dropped == ["/spec/minReplicas"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_scaled_object_scales_the_consumers(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    docs = rendered[overlay]
    (scaled,) = objects(docs, "ScaledObject")
    spec = scaled["spec"]
    deployment = one(docs, "Deployment", spec["scaleTargetRef"]["name"])
    assert deployment["metadata"]["name"] == CONSUMERS
    # KEDA owns the count: a replicas field would be reset by every apply.
    assert "replicas" not in deployment["spec"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    one(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    # KEDA reads every trigger setting as a string.
    assert all(isinstance(value, str) for value in trigger["metadata"].values())


def test_aws_trigger_watches_the_queue_the_app_reads(
    rendered: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    docs = rendered["aws"]
    (trigger,) = objects(docs, "ScaledObject")[0]["spec"]["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    metadata = trigger["metadata"]
    # The aws-sqs-queue scaler's settings (KEDA 2.16); its trigger metadata is free-form
    # in the CRD, so a misspelt key would be ignored silently.
    assert set(metadata) <= {
        "queueURL",
        "queueURLFromEnv",
        "queueLength",
        "activationQueueLength",
        "awsRegion",
        "awsEndpoint",
        "scaleOnInFlight",
        "scaleOnDelayed",
    }
    assert int(metadata["queueLength"]) > 0
    app = stream_names(settings_of(docs), tmp_path)
    region, account, queue = _sqs_url_parts(metadata["queueURL"])
    assert (queue, region) == (app["queue_name"], app["region"])
    assert metadata["awsRegion"] == app["region"]
    # IRSA: KEDA assumes the consumers' own role, named on their service account.
    (auth,) = objects(docs, "TriggerAuthentication")
    assert auth["spec"]["podIdentity"] == {"provider": "aws", "identityOwner": "workload"}
    role = _annotation(docs, CONSUMERS, "eks.amazonaws.com/role-arn")
    assert role.startswith(f"arn:aws:iam::{account}:role/")
    assert _annotation(docs, SERVICE, "eks.amazonaws.com/role-arn") != role


def test_gcp_trigger_watches_the_subscription_the_app_reads(
    rendered: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    docs = rendered["gcp"]
    (trigger,) = objects(docs, "ScaledObject")[0]["spec"]["triggers"]
    assert trigger["type"] == "gcp-pubsub"
    metadata = trigger["metadata"]
    # The gcp-pubsub scaler's settings (KEDA 2.16).
    assert set(metadata) <= {
        "mode",
        "value",
        "activationValue",
        "aggregation",
        "timeHorizon",
        "valueIfNull",
        "subscriptionName",
        "subscriptionNameFromEnv",
        "topicName",
        "topicNameFromEnv",
    }
    assert metadata["mode"] == "SubscriptionSize"
    assert int(metadata["value"]) > 0
    app = stream_names(settings_of(docs), tmp_path)
    assert metadata["subscriptionName"] == app["subscription"]
    (auth,) = objects(docs, "TriggerAuthentication")
    assert auth["spec"]["podIdentity"] == {"provider": "gcp"}
    project = settings_of(docs)["GCP_PROJECT_ID"]
    for account in (SERVICE, CONSUMERS):
        email = _annotation(docs, account, "iam.gke.io/gcp-service-account")
        assert email == f"{account}@{project}.iam.gserviceaccount.com"


@pytest.mark.parametrize("overlay", ("base", *OVERLAYS))
def test_pods_run_the_roles_hardened(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    docs = rendered[overlay]
    home = settings_of(docs)["TIDEFLOW_HOME"]
    for name, role in ((SERVICE, "service"), (CONSUMERS, "consumers")):
        pod = one(docs, "Deployment", name)["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == name
        one(docs, "ServiceAccount", name)
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["terminationGracePeriodSeconds"] >= MIN_STOP_SECONDS
        (container,) = pod["containers"]
        args = container["args"]
        assert args[:3] == ["run", "--only", role]
        assert int(args[args.index("--port") + 1]) == APP_PORT
        assert container["ports"] == [{"name": "http", "containerPort": APP_PORT}]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        # The only writable paths: the state directory and /tmp, both emptyDir.
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert set(mounts) == {home, "/tmp"}
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        assert all("emptyDir" in volumes[volume] for volume in mounts.values())
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        # A full disk makes /healthz 503 (out of rotation); restarting would not free it.
        assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        readiness = container["readinessProbe"]
        if role == "service":
            assert readiness["httpGet"] == {"path": "/healthz", "port": "http"}
        else:
            code = readiness["exec"]["command"][-1]
            assert f"127.0.0.1:{APP_PORT}/healthz" in code and '"consumers_ready"' in code
        refs = {
            next(iter(source)): next(iter(source.values()))["name"]
            for source in container["envFrom"]
        }
        assert refs["configMapRef"] == objects(docs, "ConfigMap")[0]["metadata"]["name"]
        assert refs["secretRef"] == objects(docs, "Secret")[0]["metadata"]["name"]


@pytest.mark.parametrize("overlay", ("base", *OVERLAYS))
def test_selectors_pick_the_right_pods(rendered: dict[str, list[Manifest]], overlay: str) -> None:
    docs = rendered[overlay]
    labels = {
        name: one(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        for name in (SERVICE, CONSUMERS)
    }

    def selects(selector: dict[str, str], name: str) -> bool:
        return selector.items() <= labels[name].items()

    service = one(docs, "Service", "image-classification")["spec"]
    assert selects(service["selector"], SERVICE) and not selects(service["selector"], CONSUMERS)
    assert service["ports"][0]["targetPort"] == "http"
    for name in (SERVICE, CONSUMERS):
        budget = one(docs, "PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"]
        others = {SERVICE, CONSUMERS} - {name}
        assert selects(budget, name) and not any(selects(budget, other) for other in others)
        assert one(docs, "Deployment", name)["spec"]["selector"]["matchLabels"] == budget


@pytest.mark.parametrize("overlay", ("base", *OVERLAYS))
def test_everything_lives_in_one_namespace(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    for doc in rendered[overlay]:
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == NAMESPACE
        else:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]


def _dropped(given: Any, kept: Any, path: str = "") -> list[str]:
    """Paths in ``given`` that ``kept`` lacks."""
    if isinstance(given, dict):
        missing = []
        for key, value in given.items():
            if key not in kept:
                missing.append(f"{path}/{key}")
            else:
                missing += _dropped(value, kept[key], f"{path}/{key}")
        return missing
    if isinstance(given, list):
        return [
            p
            for i, (a, b) in enumerate(zip(given, kept, strict=True))
            for p in _dropped(a, b, f"{path}[{i}]")
        ]
    return []


def _sqs_url_parts(url: str) -> tuple[str, str, str]:
    """(region, account, queue) of ``https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE``."""
    host, account, queue = url.removeprefix("https://").split("/")
    assert host.startswith("sqs.") and host.endswith(".amazonaws.com"), url
    return host.split(".")[1], account, queue


def _annotation(docs: list[Manifest], account: str, key: str) -> str:
    value: str = one(docs, "ServiceAccount", account)["metadata"]["annotations"][key]
    return value
