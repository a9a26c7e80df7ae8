"""A missing extra is one line naming what to install: the stacks and the warehouse.

A package is hidden the way Python itself reports a missing one: ``sys.modules[name] =
None`` makes ``import name`` raise ModuleNotFoundError (the real package stays installed).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO
from tideflow.exceptions import ConfigError
from tideflow.extras import missing_extra
from tideflow.stacks import get_stack


def hide(monkeypatch: pytest.MonkeyPatch, package: str, *importers: str) -> None:
    """Make ``package`` look uninstalled, and forget the modules that imported it."""
    for name in list(sys.modules):
        if name.startswith(importers):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)  # type: ignore[arg-type]


def test_the_message_names_the_extra_and_the_command() -> None:
    assert missing_extra("gcp", "the gcp stack", "google") == (
        "the gcp stack needs the 'gcp' extra (google is not installed): pip install -e '.[gcp]'"
    )


@pytest.mark.parametrize(("stack", "package"), [("gcp", "google"), ("aws", "boto3")])
def test_a_stack_without_its_sdk_says_which_extra(
    monkeypatch: pytest.MonkeyPatch, stack: str, package: str
) -> None:
    hide(monkeypatch, package, f"tideflow.io.{stack}")
    with pytest.raises(ConfigError) as caught:
        get_stack(stack)
    assert str(caught.value) == missing_extra(stack, f"the {stack} stack", package)


def test_the_postgres_warehouse_without_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    hide(monkeypatch, "psycopg", "tideflow.io.postgres")
    monkeypatch.setenv("WAREHOUSE", "postgres")
    monkeypatch.setenv("POSTGRES_URL", "postgresql://localhost/db")
    with pytest.raises(ConfigError, match=r"WAREHOUSE=postgres needs the 'postgres' extra"):
        get_stack("aws").dataset("images")


def test_the_command_line_prints_it_whole() -> None:
    # The real `tideflow` entry point, on the app, with the gcp SDK hidden.
    code = (
        "import sys; sys.modules['google'] = None; sys.argv = ['tideflow', 'plan'];"
        "from tideflow.cli.main import app; app()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "STACK": "gcp", "GCP_PROJECT_ID": "p", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot import entry point 'main:app'")
    assert line.endswith(missing_extra("gcp", "the gcp stack", "google"))
