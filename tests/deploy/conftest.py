"""The Kubernetes recipe rendered once per session, as `kubectl apply -k` would render it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.support import KUBERNETES, OVERLAYS, Manifest


def kustomize(directory: Path) -> list[Manifest]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing (its kustomize renders the manifests): make setup-dev"
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Manifest]]:
    """``base`` and each overlay, rendered from a copy in which every overlay's
    ``secrets.env`` is its committed example (what a user copies and fills in)."""
    copy = tmp_path_factory.mktemp("kubernetes") / "kubernetes"
    shutil.copytree(KUBERNETES, copy, ignore=shutil.ignore_patterns("secrets.env"))
    for overlay in OVERLAYS:
        folder = copy / "overlays" / overlay
        shutil.copy(folder / "secrets.env.example", folder / "secrets.env")
    renders = {"base": kustomize(copy / "base")}
    renders.update({overlay: kustomize(copy / "overlays" / overlay) for overlay in OVERLAYS})
    return renders
