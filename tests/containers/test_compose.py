"""deploy/compose.yaml under podman-compose (pinned in requirements/dev.txt): the local stack
as one container of the serving image (its own user, its health check passing) whose state
lives in a volume, through `up`, `down` and `up` again; the several-container layout stays
out of the default `up`."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from tests.app.support import CHELSEA, upload, wait_for_status
from tests.conftest import REPO, free_port
from tests.containers.podman import COMPOSE_LABEL, Container, Podman, podman_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

COMPOSE_FILE = REPO / "deploy" / "compose.yaml"
PODMAN_COMPOSE = [sys.executable, "-m", "podman_compose"]


def test_compose_runs_the_local_stack_with_a_volume(podman: Podman, serving_image: str) -> None:
    project = podman.compose_project()
    port = free_port()
    env = {**podman_env(), "IMAGE": serving_image, "PORT": str(port)}

    def compose(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*PODMAN_COMPOSE, "--project-name", project, "--file", str(COMPOSE_FILE), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0 or not check, done.stdout[-2000:] + done.stderr[-2000:]
        return done

    def app() -> Container:
        (container_id,) = podman(
            "ps", "--quiet", "--filter", f"label={COMPOSE_LABEL}={project}"
        ).stdout.split()  # one container: the profiles' services stay down
        return Container(podman, container_id, port)

    try:
        compose("up", "--detach")
        first = app()
        first.wait_ready(consumers=True)
        # The image's own user, and its HEALTHCHECK passes.
        assert podman("exec", first.id, "id", "-u").stdout.strip() == "10001"
        assert podman("healthcheck", "run", first.id, check=False).returncode == 0
        accepted = upload(first, CHELSEA.read_bytes(), "chelsea.png", content_type="image/png")
        assert accepted.status_code == 202, accepted.text
        status = wait_for_status(first, accepted.json()["status_url"], timeout=60)
        assert status["status"] == "classified", status

        compose("down")
        compose("up", "--detach")
        again = app()
        assert again.id != first.id
        again.wait_ready(consumers=False)
        results = httpx.get(f"{again.base_url}/api/results", timeout=30).json()
        assert results["total"] == 1 and results["rows"][0]["image_name"] == "chelsea.png"
    finally:
        down = compose("down", "--volumes", check=False)
        podman.remove(f"{COMPOSE_LABEL}={project}")  # if `down` could not
    assert down.returncode == 0, down.stderr
    assert not podman("volume", "ls", "--quiet", "--filter", f"name={project}").stdout.split()
