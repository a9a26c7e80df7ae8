"""The `gcloud` and `aws` commands in the deploy READMEs exist, with these flags, offline.

``gcloud``: the installed Google Cloud CLI's own command tree (the static tree it ships
for shell completion: every command, flag and choice). ``aws``: botocore's service models
(the aws CLI's operations are these, with kebab-case names) and its waiters.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

from tests.deploy.support import readme_commands

GCLOUD_COMMANDS = list(readme_commands("gcloud"))
AWS_COMMANDS = list(readme_commands("aws"))
# The aws CLI's own options, valid with every operation.
AWS_GLOBAL_OPTIONS = {
    "--region",
    "--profile",
    "--output",
    "--query",
    "--endpoint-url",
    "--no-cli-pager",
}


@pytest.fixture(scope="module")
def gcloud_tree() -> dict[str, Any]:
    gcloud = shutil.which("gcloud")
    assert gcloud, "the Google Cloud CLI is missing (make setup-dev installs it)"
    path = Path(gcloud).resolve().parent.parent / "data" / "cli" / "gcloud_completions.py"
    spec = importlib.util.spec_from_file_location("gcloud_completions", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tree: dict[str, Any] = module.STATIC_COMPLETION_CLI_TREE
    return tree


def test_readmes_have_commands() -> None:
    assert len(GCLOUD_COMMANDS) >= 10 and len(AWS_COMMANDS) >= 4


@pytest.mark.parametrize(
    "argv", [argv for _, argv in GCLOUD_COMMANDS], ids=[" ".join(a[:5]) for _, a in GCLOUD_COMMANDS]
)
def test_gcloud_command(gcloud_tree: dict[str, Any], argv: list[str]) -> None:
    assert _gcloud_problems(gcloud_tree, argv) == []


def test_gcloud_check_finds_mistakes(gcloud_tree: dict[str, Any]) -> None:
    assert _gcloud_problems(gcloud_tree, ["gcloud", "run", "deploy", "x", "--cpu-throttle"]) == [
        "unknown flag --cpu-throttle"
    ]
    assert _gcloud_problems(gcloud_tree, ["gcloud", "run", "deploy", "x", "--ingress=public"]) == [
        "--ingress=public: not one of all, internal, internal-and-cloud-load-balancing"
    ]
    assert _gcloud_problems(gcloud_tree, ["gcloud", "run", "services"]) == ["not a command"]


@pytest.mark.parametrize(
    "argv", [argv for _, argv in AWS_COMMANDS], ids=[" ".join(a[:3]) for _, a in AWS_COMMANDS]
)
def test_aws_command(argv: list[str]) -> None:
    assert _aws_problems(argv) == []


def test_aws_check_finds_mistakes() -> None:
    assert _aws_problems(["aws", "iam", "create-role", "--role", "x"]) == ["unknown option --role"]
    assert _aws_problems(["aws", "iam", "make-role"]) == ["iam has no operation make-role"]


def _gcloud_problems(tree: dict[str, Any], argv: list[str]) -> list[str]:
    node, rest = tree, argv[1:]
    while rest and rest[0] in node["commands"]:
        node, rest = node["commands"][rest[0]], rest[1:]
    if node["commands"]:
        return ["not a command"]
    flags = {**tree["flags"], **node["flags"]}
    problems = []
    tokens = iter(rest)
    for token in tokens:
        if not token.startswith("--"):
            continue  # a positional argument
        name, _, value = token.partition("=")
        kind = flags.get(name)
        if kind is None and name.startswith("--no-") and flags.get("--" + name[5:]) == "bool":
            continue
        if name not in flags:
            problems.append(f"unknown flag {name}")
            continue
        if kind != "bool" and not value:
            value = next(tokens, "")
        if isinstance(kind, list) and "$" not in value and value not in kind:
            problems.append(f"{token}: not one of {', '.join(kind)}")
    return problems


def _aws_problems(argv: list[str]) -> list[str]:
    session = botocore.session.get_session()
    service, operation, *rest = argv[1:]
    model = session.get_service_model(service)
    if operation == "wait":
        waiter, *rest = rest
        waiters = {
            xform_name(name, "-"): name for name in session.get_waiter_model(service).waiter_names
        }
        if waiter not in waiters:
            return [f"{service} has no waiter {waiter}"]
        operation = xform_name(
            session.get_waiter_model(service).get_waiter(waiters[waiter]).operation, "-"
        )
    operations = {xform_name(name, "-"): name for name in model.operation_names}
    if operation not in operations:
        return [f"{service} has no operation {operation}"]
    shape = model.operation_model(operations[operation]).input_shape
    options = {"--" + xform_name(member, "-") for member in (shape.members if shape else {})}
    return [
        f"unknown option {token}"
        for token in rest
        if token.startswith("--") and token not in options | AWS_GLOBAL_OPTIONS
    ]
