"""``tideflow query`` and ``tideflow export`` through the running app (its admin socket):
reads only unless --write, never a schema change, no file access, a row cap that streams,
and an export that only ever writes a regular file. The same with the app stopped is in
test_query_export_cli.py; the checks themselves in tests/tideflow/test_user_query.py."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import psutil
import pytest

from tests.app.support import CHELSEA, upload, wait_for_status
from tests.conftest import TideflowProcess

pytestmark = pytest.mark.slow


def test_schema_changes_are_refused_and_uploads_keep_their_table(
    shared_app: TideflowProcess,
) -> None:
    # Every statement kind refused: tests/tideflow/test_user_query.py.
    for sql, flags in [
        ("DROP TABLE {table}", ["--write"]),
        ("ALTER TABLE {table} RENAME COLUMN image_name TO renamed", ["--write"]),
        ("DROP TABLE image_classification_corrections", []),
    ]:
        refused = shared_app.cli("query", sql, *flags)
        assert refused.returncode == 2, (sql, refused.stdout)
        assert "statements are not run" in refused.stderr, refused.stderr
    accepted = upload(shared_app, CHELSEA.read_bytes(), "after-refused-drop.png")
    assert accepted.status_code == 202, accepted.text
    assert wait_for_status(shared_app, accepted.json()["status_url"])["status"] == "classified"


def test_row_changes_need_write(shared_app: TideflowProcess) -> None:
    sql = "UPDATE {table} SET image_name = 'tampered' WHERE image_name = 'no-such-image'"
    refused = shared_app.cli("query", sql)
    assert refused.returncode == 2
    assert "UPDATE changes rows and queries are read-only" in refused.stderr
    assert "`tideflow query --write`" in refused.stderr
    allowed = shared_app.cli("query", sql, "--write", "--format", "json")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout) == [{"Count": 0}]


def test_sql_cannot_read_files(shared_app: TideflowProcess) -> None:
    refused = shared_app.cli("query", "SELECT * FROM read_text('/etc/shadow')")
    assert refused.returncode == 2
    assert "file system operations are disabled by configuration" in refused.stderr


def test_sql_cannot_write_files(shared_app: TideflowProcess, tmp_path: Path) -> None:
    target = tmp_path / "copied.csv"
    refused = shared_app.cli("query", f"COPY (SELECT 42 AS x) TO '{target}'", "--write")
    assert refused.returncode == 2 and "COPY statements are not run" in refused.stderr
    assert not target.exists()


def test_rows_stream_up_to_a_cap(shared_app: TideflowProcess) -> None:
    assert shared_app.process is not None
    run_process = psutil.Process(shared_app.process.pid)
    before = run_process.memory_info().rss
    # 3M rows took 1.1 GB of the run process when all were fetched and encoded.
    capped = shared_app.cli("query", "SELECT * FROM range(3000000) AS r(n)", "--format", "json")
    grown = run_process.memory_info().rss - before
    assert capped.returncode == 0, capped.stderr
    assert len(json.loads(capped.stdout)) == 1000
    assert "only the first 1,000 row(s): the query has more (--max-rows" in capped.stderr
    assert grown < 100 * 1024 * 1024, f"run process grew {grown / 1e6:.0f} MB"

    few = shared_app.cli("query", "SELECT * FROM range(10)", "--max-rows", "10")
    assert few.returncode == 0 and "only the first" not in few.stderr
    too_many = shared_app.cli("query", "SELECT 1", "--max-rows", "100001")
    assert too_many.returncode == 2
    assert "max rows must be between 1 and 100,000" in too_many.stderr


def _special_files(folder: Path) -> dict[str, Path]:
    fifo, device = folder / "fifo", folder / "null"
    os.mkfifo(fifo)
    os.mknod(device, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
    return {"a FIFO": fifo, "a device": device, "a folder": folder}


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a device needs root")
def test_export_refuses_what_is_not_a_regular_file(
    shared_app: TideflowProcess, tmp_path: Path
) -> None:
    for kind, target in _special_files(tmp_path).items():
        refused = shared_app.cli("export", "--out", str(target))
        assert refused.returncode == 2, refused.stdout
        assert f"cannot export to {target}: it is {kind}" in refused.stderr
    assert stat.S_ISFIFO((tmp_path / "fifo").stat().st_mode)
    assert stat.S_ISCHR((tmp_path / "null").stat().st_mode)
    long_name = shared_app.cli("export", "--out", str(tmp_path / ("n" * 300)))
    assert long_name.returncode == 2 and "File name too long" in long_name.stderr
    assert "Internal Server Error" not in long_name.stderr


def test_replay_names_the_stream(shared_app: TideflowProcess) -> None:
    replayed = shared_app.cli("replay", "--prefix", "no-such-prefix/")
    assert replayed.returncode == 0, replayed.stderr
    assert "local-file-change-stream:" in replayed.stdout
    assert "bound method" not in replayed.stdout
