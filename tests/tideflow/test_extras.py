"""A missing extra is one line naming what to install: the stacks and the warehouse.

Each check runs in a fresh interpreter where the package is hidden the way Python reports
a missing one (``sys.modules[name] = None`` makes ``import name`` raise
ModuleNotFoundError); the real package stays installed for the other tests.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO
from tideflow.extras import missing_extra


def said_without(package: str, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` where ``package`` is not installed; an exception it raises is printed
    as its last line of stdout, ``Type: message``."""
    lines = "\n".join(f"    {line}" for line in code.strip().splitlines())
    script = (
        f"import sys\nsys.modules[{package!r}] = None\ntry:\n{lines}\n"
        "except Exception as exc:\n    print(f'{type(exc).__name__}: {exc}')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def raised(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0 and done.stdout.strip(), done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_the_message_names_the_extra_and_the_command() -> None:
    assert missing_extra("gcp", "the gcp stack", "google") == (
        "the gcp stack needs the 'gcp' extra (google is not installed): pip install -e '.[gcp]'"
    )


@pytest.mark.parametrize(("stack", "package"), [("gcp", "google"), ("aws", "boto3")])
def test_a_stack_without_its_sdk_says_which_extra(stack: str, package: str) -> None:
    done = said_without(package, f"from tideflow.stacks import get_stack\nget_stack({stack!r})")
    assert raised(done) == f"ConfigError: {missing_extra(stack, f'the {stack} stack', package)}"


def test_the_postgres_warehouse_without_psycopg() -> None:
    done = said_without(
        "psycopg",
        "from tideflow.stacks import get_stack\nget_stack('aws').dataset('images')",
        WAREHOUSE="postgres",
        POSTGRES_URL="postgresql://localhost/db",
    )
    expected = missing_extra("postgres", "WAREHOUSE=postgres", "psycopg")
    assert raised(done) == f"ConfigError: {expected}"


def test_the_command_line_prints_it_on_one_line() -> None:
    # The real `tideflow` entry point on the app, in an 80-column terminal's width.
    done = said_without(
        "google",
        "from tideflow.cli.main import app\nsys.argv = ['tideflow', 'plan']\napp()",
        STACK="gcp",
        GCP_PROJECT_ID="p",
        COLUMNS="80",
    )
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot import entry point 'main:app'")
    assert line.endswith(missing_extra("gcp", "the gcp stack", "google"))
