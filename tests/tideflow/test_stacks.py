"""The provider registry: names to providers, imported only when chosen."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tideflow.exceptions import ConfigError
from tideflow.io.duckdb import DuckDBTable
from tideflow.io.local import LocalBucket, LocalFileChangeStream
from tideflow.stacks import PROVIDERS, get_stack


def test_every_registered_provider_is_importable_by_name() -> None:
    assert set(PROVIDERS) >= {"local", "gcp", "aws"}
    for target in PROVIDERS.values():
        module, _, cls = target.partition(":")
        assert module.startswith("tideflow.io.") and cls.endswith("Stack")


def test_a_typo_gets_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="no such stack 'gpc'; did you mean 'gcp'\\?"):
        get_stack("gpc")
    with pytest.raises(ConfigError, match="no such stack 'zzz'; known: local, gcp, aws"):
        get_stack("zzz")


def test_local_stack_builds_the_four_primitives(tmp_path: object) -> None:
    stack = get_stack("local")
    bucket = stack.bucket("images")
    assert isinstance(bucket, LocalBucket)
    assert isinstance(stack.file_change_stream(bucket), LocalFileChangeStream)
    table = stack.table(stack.dataset("warehouse"), "results")
    assert isinstance(table, DuckDBTable)
    assert table.failure_table.table_name == "results_failures"


def test_gcp_stack_names_its_missing_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GCP_PROJECT_ID", raising=False)
    with pytest.raises(ConfigError, match="GCP_PROJECT_ID is required"):
        get_stack("gcp")


def test_choosing_local_imports_no_provider_sdk() -> None:
    code = (
        "import sys; from tideflow.stacks import get_stack; get_stack('local');"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'google', 'boto3', 'psycopg'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
