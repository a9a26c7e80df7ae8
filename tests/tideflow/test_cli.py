"""The command line's errors (one line, exit code 2) and apply's idempotence."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import TideflowProcess
from tests.tideflow.conftest import TEXTFLOW


def _copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(TEXTFLOW, project)
    return project


def test_missing_config_says_where_it_looked(
    tideflow_factory: Callable[..., TideflowProcess], tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = tideflow_factory(empty).cli("plan")
    assert result.returncode == 2
    assert f"no buildflow.yaml in {empty}" in " ".join(result.stderr.split())


def test_bad_entry_point_says_what_failed(
    tideflow_factory: Callable[..., TideflowProcess], tmp_path: Path
) -> None:
    project = _copy_project(tmp_path)
    config = project / "buildflow.yaml"
    config.write_text(config.read_text().replace("textflow:app", "missing_module:app"))
    result = tideflow_factory(project).cli("plan")
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "cannot import entry point 'missing_module:app'" in message
    assert "No module named 'missing_module'" in message


def test_entry_point_that_is_not_a_flow(
    tideflow_factory: Callable[..., TideflowProcess], tmp_path: Path
) -> None:
    project = _copy_project(tmp_path)
    config = project / "buildflow.yaml"
    config.write_text(config.read_text().replace("textflow:app", "textflow:service"))
    result = tideflow_factory(project).cli("plan")
    assert result.returncode == 2
    assert "must name a tideflow Flow" in " ".join(result.stderr.split())


def test_unknown_stack_lists_the_known_ones(
    tideflow_factory: Callable[..., TideflowProcess],
) -> None:
    result = tideflow_factory(TEXTFLOW).cli("plan", "--stack", "mars")
    assert result.returncode == 2
    assert "unknown stack 'mars'; buildflow.yaml lists: local, other" in result.stderr


def test_a_mistyped_stack_gets_a_suggestion(
    tideflow_factory: Callable[..., TideflowProcess],
) -> None:
    result = tideflow_factory(TEXTFLOW).cli("plan", "--stack", "lcoal")
    assert result.returncode == 2
    assert "unknown stack 'lcoal'; did you mean 'local'? buildflow.yaml lists: local, other" in (
        result.stderr
    )


def test_choices_are_checked_by_the_command_line(
    tideflow_factory: Callable[..., TideflowProcess],
) -> None:
    app = tideflow_factory(TEXTFLOW)
    only = app.cli("run", "--only", "servce")
    assert only.returncode == 2
    assert "'servce' is not one of 'service', 'consumers'" in " ".join(
        only.stderr.replace("│", " ").split()
    )
    assert not app.home.exists()  # refused before anything was opened
    # Log levels in any case.
    assert app.cli("--log-level", "debug", "plan").returncode == 0


def test_bad_yaml_is_reported(
    tideflow_factory: Callable[..., TideflowProcess], tmp_path: Path
) -> None:
    project = _copy_project(tmp_path)
    (project / "buildflow.yaml").write_text("project: [unclosed\n")
    result = tideflow_factory(project).cli("plan")
    assert result.returncode == 2
    assert "is not valid YAML" in result.stderr


def test_plan_apply_twice_and_destroy(tideflow_factory: Callable[..., TideflowProcess]) -> None:
    app = tideflow_factory(TEXTFLOW)
    plan = app.cli("plan")
    assert plan.returncode == 0
    # bucket, stream, dataset, table, and the table's failure log beside it
    assert plan.stdout.count("create") == 5
    assert "texts_failures" in plan.stdout

    first = app.cli("apply", "--yes")
    assert first.returncode == 0, first.stderr
    assert "Applied. 5 primitive(s) changed." in first.stdout
    second = app.cli("apply", "--yes")
    assert second.returncode == 0
    assert "No changes." in second.stdout
    assert "no change" in app.cli("plan").stdout

    destroyed = app.cli("destroy", "--yes")
    assert destroyed.returncode == 0, destroyed.stderr
    assert "Removed 5 primitive(s)" in destroyed.stdout
    assert not (app.home / "warehouse.duckdb").exists()
    assert "Nothing to remove." in app.cli("destroy", "--yes").stdout


def test_apply_without_yes_asks_and_stops_on_no(
    tideflow_factory: Callable[..., TideflowProcess],
) -> None:
    app = tideflow_factory(TEXTFLOW)
    answered = subprocess.run(
        [sys.executable, "-m", "tideflow", "apply"],
        cwd=app.project_dir,
        env=app.env,
        input="n\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert answered.returncode == 0
    assert "Nothing done." in answered.stdout
    assert not (app.home / "warehouse.duckdb").exists()
