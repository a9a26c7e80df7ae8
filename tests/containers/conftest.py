"""The container tests: the serving image built once per session (reused while its inputs
do not change), and the emulators of the aws and gcp tests, which the containers reach on
the host's network.

``make setup-dev`` installs Podman, runc and debootstrap (apt); the base image
(debian:bookworm-slim) is built locally with debootstrap when no registry can be reached.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

# The aws and gcp tests' servers, started once per session for these tests too.
from tests.aws.conftest import (  # noqa: F401
    moto_server,
    postgres_cluster,
    postgres_server,
    postgres_url,
)
from tests.containers.podman import Podman, build_serving_image
from tests.gcp.conftest import bigquery_emulator, eventing_storage, pubsub_emulator  # noqa: F401


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run `make setup-dev` (it apt-installs them)")
    session = Podman()
    session.remove_orphans()
    try:
        yield session
    finally:
        session.remove(session.label)


@pytest.fixture(scope="session")
def serving_image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image `make image` builds, tagged by the digest of its inputs."""
    return build_serving_image(podman, tmp_path_factory.mktemp("image") / "build.log")
