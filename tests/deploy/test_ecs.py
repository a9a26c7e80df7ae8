"""deploy/ecs: the CloudFormation template, linted with cfn-lint and checked against the app."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint, lint_file

from tests.deploy.support import (
    APP_PORT,
    DEPLOY,
    MIN_STOP_SECONDS,
    REPO,
    cloudformation_template,
    readme_commands,
)
from tideflow.io.aws.s3 import S3Bucket
from tideflow.io.aws.stream import S3FileChangeStream

TEMPLATE = DEPLOY / "ecs" / "template.yaml"
CFN_LINT_ALL = ManualArgs(include_checks=["I"])


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return cloudformation_template()


def test_cfn_lint_finds_nothing() -> None:
    # Errors, warnings and informational findings alike (`cfn-lint -c I`).
    assert [str(match) for match in lint_file(TEMPLATE, CFN_LINT_ALL)] == []


def test_cfn_lint_rejects_a_broken_template() -> None:
    broken = TEMPLATE.read_text().replace("TargetValue:", "TargetValu:")
    assert "'TargetValue' is a required property" in str(lint(broken, config=CFN_LINT_ALL))


@pytest.mark.parametrize(
    ("role", "readme_policy"), [("ConsumerTaskRole", "consumer"), ("ServiceTaskRole", "service")]
)
def test_task_roles_grant_what_the_readme_states(
    template: dict[str, Any], role: str, readme_policy: str
) -> None:
    (policy,) = template["Resources"][role]["Properties"]["Policies"]
    granted = {
        (action, _resource_kind(resource))
        for statement in policy["PolicyDocument"]["Statement"]
        for action in statement["Action"]
        for resource in _listed(statement["Resource"])
    }
    if readme_policy == "consumer":
        assert granted == _readme_consumer_grants()
    else:
        # docs/stacks/aws.md lists the service's actions in a sentence, "on the resources above".
        assert {action for action, _ in granted} == _readme_service_actions()


def test_tasks_run_the_roles_hardened(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    for definition, role in (
        ("ServiceTaskDefinition", "service"),
        ("ConsumerTaskDefinition", "consumers"),
    ):
        properties = resources[definition]["Properties"]
        (container,) = properties["ContainerDefinitions"]
        command = container["Command"]
        assert command[:3] == ["run", "--only", role]
        assert int(command[command.index("--port") + 1]) == APP_PORT
        environment = {item["Name"]: item["Value"] for item in container["Environment"]}
        assert environment["STACK"] == "aws" and environment["WAREHOUSE"] == "postgres"
        assert environment["SQS_QUEUE_NAME"] == {"Ref": "QueueName"}
        assert environment["S3_BUCKET_NAME"] == {"Ref": "BucketName"}
        assert container["ReadonlyRootFilesystem"] is True
        mounts = {mount["ContainerPath"] for mount in container["MountPoints"]}
        assert mounts == {environment["TIDEFLOW_HOME"], "/tmp"}
        assert container["StopTimeout"] >= MIN_STOP_SECONDS
        health = " ".join(container["HealthCheck"]["Command"])
        # The service's own check restarts it: liveness (the load balancer checks /healthz).
        path = "/healthz" if role == "consumers" else "/livez"
        assert f"http://127.0.0.1:{APP_PORT}{path}" in health
        assert ('"consumers_ready"' in health) == (role == "consumers")
    target_group = resources["TargetGroup"]["Properties"]
    assert (target_group["HealthCheckPath"], target_group["Port"]) == ("/healthz", APP_PORT)
    (balanced,) = resources["HttpService"]["Properties"]["LoadBalancers"]
    assert (balanced["ContainerName"], balanced["ContainerPort"]) == ("service", APP_PORT)


def test_scaling_tracks_the_backlog_per_consumer_task(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    target = resources["ConsumerScalableTarget"]["Properties"]
    assert target["ResourceId"] == {"Fn::Sub": "service/${Cluster}/${ConsumerService.Name}"}
    assert target["ScalableDimension"] == "ecs:service:DesiredCount"
    # The scaling policy owns the consumers' count, not the stack.
    assert "DesiredCount" not in resources["ConsumerService"]["Properties"]
    tracking = resources["ConsumerBacklogPerTaskPolicy"]["Properties"][
        "TargetTrackingScalingPolicyConfiguration"
    ]
    assert tracking["TargetValue"] == {"Ref": "BacklogPerTaskTarget"}
    metrics = {
        metric["Id"]: metric for metric in tracking["CustomizedMetricSpecification"]["Metrics"]
    }
    (returned,) = [metric for metric in metrics.values() if metric["ReturnData"]]
    assert returned["Expression"] == "(waiting + in_flight) / tasks"
    queue_metrics = {
        metrics[name]["MetricStat"]["Metric"]["MetricName"]: metrics[name]["MetricStat"]["Metric"]
        for name in ("waiting", "in_flight")
    }
    assert set(queue_metrics) == {
        "ApproximateNumberOfMessagesVisible",
        "ApproximateNumberOfMessagesNotVisible",
    }
    for metric in queue_metrics.values():
        assert metric["Dimensions"] == [{"Name": "QueueName", "Value": {"Ref": "QueueName"}}]
    tasks = metrics["tasks"]["MetricStat"]["Metric"]
    assert (tasks["Namespace"], tasks["MetricName"]) == (
        "ECS/ContainerInsights",
        "RunningTaskCount",
    )
    assert {d["Name"]: d["Value"] for d in tasks["Dimensions"]} == {
        "ClusterName": {"Ref": "Cluster"},
        "ServiceName": {"Fn::GetAtt": ["ConsumerService", "Name"]},
    }
    # RunningTaskCount exists only with Container Insights on.
    settings = resources["Cluster"]["Properties"]["ClusterSettings"]
    assert {"Name": "containerInsights", "Value": "enabled"} in settings
    assert template["Parameters"]["ConsumerMinTasks"]["MinValue"] >= 1  # never divide by 0


def test_readme_deploys_the_queue_the_app_derives(template: dict[str, Any]) -> None:
    (create,) = [
        argv
        for _, argv in readme_commands("aws")
        if argv[1:3] == ["cloudformation", "create-stack"]
    ]
    given = dict(
        token.removeprefix("ParameterKey=").split(",ParameterValue=", 1)
        for token in create[create.index("--parameters") + 1 :]
        if token.startswith("ParameterKey=")
    )
    parameters = template["Parameters"]
    assert set(given) <= set(parameters)
    assert {name for name, spec in parameters.items() if "Default" not in spec} <= set(given)
    stream = S3FileChangeStream(S3Bucket(given["BucketName"], region="us-east-1"))
    assert given["QueueName"] == stream.queue_name
    # The roles' dead-letter queue ARNs name it as the stream does.
    suffix = stream.dead_letter_queue_name.removeprefix(stream.queue_name)
    queue_arns = {
        resource["Fn::Sub"]
        for role in ("ServiceTaskRole", "ConsumerTaskRole")
        for statement in template["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"][
            "Statement"
        ]
        for resource in _listed(statement["Resource"])
        if ":sqs:" in resource["Fn::Sub"]
    }
    prefix = "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${QueueName}"
    assert queue_arns == {prefix, prefix + suffix}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resource_kind(resource: Any) -> str:
    """bucket, objects, queue or dlq, for the documented ARNs and the template's Fn::Sub."""
    arn = resource["Fn::Sub"] if isinstance(resource, dict) else resource
    if ":s3:::" in arn:
        return "objects" if arn.endswith("/*") else "bucket"
    assert ":sqs:" in arn, arn
    return "dlq" if arn.endswith("-dlq") else "queue"


def _readme_consumer_grants() -> set[tuple[str, str]]:
    readme = (REPO / "docs/stacks/aws.md").read_text()
    after = readme[readme.index("IAM for a consumer machine") :]
    policy = json.loads(after.split("```json\n", 1)[1].split("```", 1)[0])
    return {
        (action, _resource_kind(resource))
        for statement in policy["Statement"]
        for action in _listed(statement["Action"])
        for resource in _listed(statement["Resource"])
    }


def _readme_service_actions() -> set[str]:
    readme = (REPO / "docs/stacks/aws.md").read_text()
    start = readme.index("The service (`--only service`) needs")
    sentence = readme[start : readme.index("(plus", start)]
    return set(re.findall(r"`((?:s3|sqs):\w+)`", sentence))
