"""A missing extra is one line naming what to install: the stacks and the warehouse (each
in an interpreter where the package is hidden: tests/missing_packages.py)."""

from __future__ import annotations

import pytest

from tests.missing_packages import raised, said_without
from tideflow.extras import missing_extra


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
