"""What the deploy tests read: the recipes' files, the app's own names, the READMEs' commands."""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tideflow.runtime.runner import STOP_GRACE_SECONDS

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
OVERLAYS = ("gcp", "aws")
NAMESPACE = "image-classification"
APP_PORT = 8000
# What a stopped consumer needs after SIGTERM: the runner's grace for batches in flight,
# then time to kill late replicas, hand their events back and close the sink.
MIN_STOP_SECONDS = STOP_GRACE_SECONDS + 10

Manifest = dict[str, Any]


def objects(rendered: list[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in rendered if doc["kind"] == kind]


def one(rendered: list[Manifest], kind: str, name: str) -> Manifest:
    found = [doc for doc in objects(rendered, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def settings_of(rendered: list[Manifest]) -> dict[str, str]:
    """The environment a pod gets from the rendered ConfigMap and Secret (envFrom)."""
    (config_map,) = objects(rendered, "ConfigMap")
    (secret,) = objects(rendered, "Secret")
    values = dict(config_map.get("data", {}))
    for name, encoded in secret.get("data", {}).items():
        values[name] = base64.b64decode(encoded).decode()
    return values


def app_setting_names() -> set[str]:
    """Every environment variable the app or tideflow reads: the app's settings (pydantic
    reads each field, upper-cased) and the upper-case string constants of their source,
    which is where the providers and the runtime name what they read."""
    from image_classification.settings import Settings

    names = {field.upper() for field in Settings.model_fields}
    for package in ("tideflow", "image_classification"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    names.add(node.value)
    return {name for name in names if re.fullmatch(r"[A-Z][A-Z0-9_]*", name)}


def stream_names(settings: dict[str, str], tmp: Path) -> dict[str, str]:
    """The queue or subscription the app derives from ``settings``: the app's own
    primitives, imported in a fresh process with exactly this environment."""
    script = (
        "import json\n"
        "from image_classification.primitives import build_primitives\n"
        "from image_classification.settings import get_settings\n"
        "s = build_primitives(get_settings()).file_change_stream\n"
        "print(json.dumps({name: str(getattr(s, name)) for name in "
        "('subscription', 'queue_name', 'dead_letter_queue_name', 'region') "
        "if hasattr(s, name)}))\n"
    )
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), **settings}
    # cwd: a folder without a .env, so that only these settings count.
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    names: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return names


def readme_commands(program: str) -> Iterator[tuple[Path, list[str]]]:
    """Each ``program`` command in the shell blocks of the deploy READMEs, as argv (shell
    variables stay as written; continuation lines joined; pipes and ``&&`` split)."""
    for readme in sorted(DEPLOY.rglob("README.md")):
        for block in re.findall(r"```sh\n(.*?)```", readme.read_text(), re.S):
            script = re.sub(r"\\\n\s*", " ", block)
            for line in script.splitlines():
                if line.lstrip().startswith("#"):
                    continue
                for part in re.split(r"\|\||&&|[|;]", line):
                    argv = shlex.split(part.strip())
                    if argv[:1] == [program]:
                        yield readme, argv


def cloudformation_template() -> Manifest:
    from cfnlint.decode import cfn_yaml

    template: Manifest = cfn_yaml.load(str(DEPLOY / "ecs" / "template.yaml"))
    return template


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())
