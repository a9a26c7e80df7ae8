"""Podman, driven as the tests drive it: the serving image and the containers made from it.

``containers.conf`` here is what Podman needs on these machines (runc, cgroupfs, file
events, ulimits root may raise); ``CONTAINERS_CONF`` points at it, /etc stays as it is.
Every container a session starts carries the label ``tideflow-test-pid=<pytest's pid>``:
the session removes its own at the end, failed or not, and the next session removes
those of a session that was killed before it could.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import REPO, free_port

CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
IMAGE_REPOSITORY = "localhost/image-classification"
PID_LABEL = "tideflow-test-pid"
COMPOSE_LABEL = "io.podman.compose.project"
COMPOSE_PREFIX = "tideflow-test-"
# What the image is built from (the Dockerfile's context, as .dockerignore lets it through,
# and the build itself): same inputs, same image, so a session reuses an earlier build.
IMAGE_INPUTS = (
    "Dockerfile",
    ".dockerignore",
    "scripts/build-image.sh",
    "requirements",
    "pyproject.toml",
    "README.md",
    "tideflow",
    "image_classification",
    "main.py",
    "buildflow.yaml",
)


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def inputs_digest() -> str:
    digest = hashlib.sha256()
    for name in IMAGE_INPUTS:
        path = REPO / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if "__pycache__" in file.parts:
                continue
            digest.update(str(file.relative_to(REPO)).encode() + b"\0")
            digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()


class Podman:
    """``podman`` commands for one test session."""

    def __init__(self) -> None:
        self.label = f"{PID_LABEL}={os.getpid()}"

    def __call__(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["podman", *args],
            env=podman_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args[:3])}... failed:\n{done.stderr[-3000:]}")
        return done

    def start(self, image: str, *command: str, env: dict[str, str]) -> Container:
        """``podman run -d`` on the host's network, its HTTP port a free one (TIDEFLOW_PORT,
        which the image's health check reads too)."""
        port = free_port()
        settings = {**env, "TIDEFLOW_HOST": "127.0.0.1", "TIDEFLOW_PORT": str(port)}
        container_id = self(
            "run",
            "--detach",
            "--label",
            self.label,
            "--network",
            "host",
            *_env_options(settings),
            image,
            *command,
        ).stdout.strip()
        return Container(self, container_id, port)

    def run_once(
        self, image: str, *command: str, env: dict[str, str], entrypoint: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``podman run --rm`` to its end, on the host's network (``apply --yes``...)."""
        options = ["--entrypoint", entrypoint] if entrypoint else []
        return self(
            "run",
            "--rm",
            "--network",
            "host",
            "--label",
            self.label,
            *_env_options(env),
            *options,
            image,
            *command,
            check=False,
        )

    def remove(self, label: str) -> None:
        """Remove the containers and volumes with ``label`` (anonymous volumes too)."""
        found = self("ps", "--all", "--quiet", "--filter", f"label={label}", check=False)
        if ids := found.stdout.split():
            self("rm", "--force", "--time", "0", "--volumes", *ids, check=False)
        found = self("volume", "ls", "--quiet", "--filter", f"label={label}", check=False)
        if names := found.stdout.split():
            self("volume", "rm", "--force", *names, check=False)

    def remove_orphans(self) -> None:
        """Containers and volumes of test sessions whose pytest is gone (killed before its
        teardown): labelled with its pid, or in a compose project named after it."""
        for label in (PID_LABEL, COMPOSE_LABEL):
            listed = f'{{{{index .Labels "{label}"}}}}'
            values = self("ps", "--all", "--format", listed, check=False).stdout.split()
            values += self("volume", "ls", "--format", listed, check=False).stdout.split()
            for value in set(values):
                pid = value if label == PID_LABEL else compose_project_pid(value)
                if pid and pid.isdigit() and not Path(f"/proc/{pid}").exists():
                    self.remove(f"{label}={value}")

    def compose_project(self) -> str:
        """A compose project name for this session (remove_orphans finds it by its pid)."""
        return f"{COMPOSE_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def compose_project_pid(project: str) -> str | None:
    return (
        project.removeprefix(COMPOSE_PREFIX).split("-")[0]
        if project.startswith(COMPOSE_PREFIX)
        else None
    )


def _env_options(env: dict[str, str]) -> list[str]:
    return [option for key, value in env.items() for option in ("--env", f"{key}={value}")]


@dataclass
class Container:
    podman: Podman
    id: str
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        done = self.podman("logs", self.id, check=False)
        return done.stdout + done.stderr

    def state(self) -> dict[str, Any]:
        inspected = json.loads(self.podman("inspect", self.id).stdout)
        return dict(inspected[0]["State"])

    def handled(self) -> int:
        """Events this container's consumer finished (one log line each)."""
        return self.logs().count("outcome=ok")

    def health(self) -> dict[str, Any] | None:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            answer = httpx.get(f"{self.base_url}/healthz", timeout=2)
            if answer.status_code == 200:
                return dict(answer.json())
        return None

    def wait_ready(self, *, consumers: bool, timeout: float = 120) -> None:
        """Until /healthz answers 200 (and, with ``consumers``, every replica is ready)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = self.health()
            if health is not None and (health["consumers_ready"] or not consumers):
                return
            if not self.state()["Running"]:
                raise AssertionError(f"container {self.id[:12]} exited:\n{self.logs()[-3000:]}")
            time.sleep(0.2)
        raise AssertionError(f"container {self.id[:12]} not ready:\n{self.logs()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would."""
        self.podman("kill", "--signal", "KILL", self.id)

    def restart(self) -> None:
        """Start a stopped or killed container again, on the same volume."""
        self.podman("start", self.id)

    def stop(self, *, grace: int) -> float:
        """``podman stop`` (SIGTERM, then SIGKILL after ``grace`` seconds): how long it took."""
        started = time.monotonic()
        self.podman("stop", "--time", str(grace), self.id, timeout=grace + 30)
        return time.monotonic() - started


def build_serving_image(podman: Podman, log: Path) -> str:
    """The serving image for this checkout, built with ``make image``'s script unless an
    image of the same inputs exists. Test builds older than a day are untagged (a younger
    one may be another checkout's, in use)."""
    tag = f"{IMAGE_REPOSITORY}:test-{inputs_digest()[:16]}"
    if podman("image", "exists", tag, check=False).returncode != 0:
        for script, args in (("base-image.sh", ["podman"]), ("build-image.sh", ["podman", tag])):
            with log.open("a") as out:
                done = subprocess.run(
                    ["bash", str(REPO / "scripts" / script), *args],
                    env={**podman_env(), "PYTHON": sys.executable},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=1200,
                    check=False,
                )
            if done.returncode != 0:
                raise AssertionError(f"{script} failed:\n{log.read_text()[-4000:]}")
    older = podman(
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "--filter",
        f"reference={IMAGE_REPOSITORY}:test-*",
        "--filter",
        "until=24h",
    ).stdout.split()
    for name in set(older) - {tag}:
        podman("rmi", name, check=False)
    return tag
