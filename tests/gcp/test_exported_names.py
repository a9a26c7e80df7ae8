"""The gcp package's public names, and the boundaries its imports respect."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tideflow.io.gcp
from tideflow.io.gcp import GCSFileChangeEvent
from tideflow.types import FileChangeEvent

TIDEFLOW = Path(tideflow.io.gcp.__file__).resolve().parents[2]


def test_public_names_are_pinned() -> None:
    assert tideflow.io.gcp.__all__ == [
        "BigQueryDataset",
        "BigQueryTable",
        "GCSBucket",
        "GCSFileChangeEvent",
        "GCSFileChangeStream",
    ]
    assert issubclass(GCSFileChangeEvent, FileChangeEvent)
    assert (
        GCSFileChangeEvent.__dataclass_fields__.keys()
        == FileChangeEvent.__dataclass_fields__.keys()
    )


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_google_sdks_are_imported_only_inside_tideflow_io_gcp() -> None:
    gcp = TIDEFLOW / "io" / "gcp"
    offenders = [
        str(path.relative_to(TIDEFLOW))
        for path in TIDEFLOW.rglob("*.py")
        if gcp not in path.parents
        and any(m.split(".")[0] == "google" for m in imported_modules(path))
    ]
    assert offenders == []


def test_the_gcp_adapters_never_import_the_runtime() -> None:
    code = (
        "import sys, tideflow.io.gcp; "
        "print(any(m.startswith('tideflow.runtime') for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
