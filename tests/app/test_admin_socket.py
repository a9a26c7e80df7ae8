"""Only the run's user (and root) reaches its admin socket, which runs SQL and writes files.

The state directory tideflow creates is 0700, the socket is 0600 in every layout, a state
path too long for a socket name puts it in a private directory (never a shared temp path)
that is gone after the run, and the server checks each peer's uid. Another local user is
played by uid 65534 (nobody) through setpriv, so the tests need root (as they run here)
and a system Python that user may run.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.support import make_app
from tests.conftest import TideflowProcess

SETPRIV = shutil.which("setpriv")
OTHER_PYTHON = shutil.which("python3", path="/usr/bin:/bin")  # not a venv under /root

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or SETPRIV is None or OTHER_PYTHON is None,
        reason="acting as another user needs root, setpriv and /usr/bin/python3",
    ),
]

# What another user tries; prints each outcome as JSON.
_ATTEMPTS = r"""
import json, os, socket, sys

home, sock = sys.argv[1], sys.argv[2]


def ask():
    client = socket.socket(socket.AF_UNIX)
    client.settimeout(10)
    client.connect(sock)
    client.sendall(
        b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    answer = client.recv(200)
    return answer.split(b"\r\n")[0].decode() if answer else "closed without an answer"


def write():
    with open(os.path.join(home, "planted"), "w"):
        return "written"


outcomes = {}
for name, attempt in {
    "ask": ask,
    "list": lambda: sorted(os.listdir(home)),
    "read": lambda: open(os.path.join(home, "run.json")).read(),
    "write": write,
}.items():
    try:
        outcomes[name] = attempt()
    except OSError as exc:
        outcomes[name] = type(exc).__name__
print(json.dumps(outcomes))
"""


def as_other_user(home: Path, sock: Path) -> dict[str, object]:
    assert SETPRIV is not None and OTHER_PYTHON is not None
    command = [SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups"]
    done = subprocess.run(
        [*command, OTHER_PYTHON, "-c", _ATTEMPTS, str(home), str(sock)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcome: dict[str, object] = json.loads(done.stdout)
    return outcome


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def public() -> Iterator[Path]:
    """A folder any user may enter (pytest's own temp folders are 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="tideflow-public-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def started(home: Path, log_dir: Path) -> TideflowProcess:
    app = make_app(home)
    app.log_path = log_dir / "run.log"  # not beside the home: its parents are tideflow's
    app.start("--replicas", "1")
    return app


def admin_socket(app: TideflowProcess) -> Path:
    return Path(json.loads((app.home / "run.json").read_text())["admin_socket"])


def test_the_state_directory_tideflow_creates_is_the_owners_alone(public: Path) -> None:
    home = public / "project" / ".tideflow" / "local"  # as the default ./.tideflow/local
    app = started(home, public)
    try:
        sock = admin_socket(app)
        assert sock == home / "admin.sock"
        for folder in (public / "project", home.parent, home, home / "journal"):
            assert mode(folder) == 0o700, folder
        assert mode(sock) == 0o600
        assert as_other_user(home, sock) == {
            "ask": "PermissionError",
            "list": "PermissionError",
            "read": "PermissionError",
            "write": "PermissionError",
        }

        # Even with every folder open to others and the socket 0666 (as Uvicorn makes
        # it), the server hangs up on another uid before reading a byte.
        for folder in (public / "project", home.parent, home):
            folder.chmod(0o755)
        sock.chmod(0o666)
        assert as_other_user(home, sock)["ask"] in {
            "closed without an answer",
            "ConnectionResetError",
            "BrokenPipeError",
        }
        assert "refused a connection to the admin socket from uid 65534" in app.log()
        # The owner is still answered.
        status = app.cli("status")
        assert status.returncode == 0 and "tideflow run: running" in status.stdout
        assert app.stop() == 0
    finally:
        app.close()
    assert not sock.exists()


def test_a_long_state_path_keeps_the_socket_private_and_removes_it(public: Path) -> None:
    # A state directory the user made open to others, with a path too long for a socket.
    home = public / ("a-long-folder-name-" * 6) / "local"
    home.mkdir(parents=True, mode=0o755)
    home.chmod(0o755)
    app = started(home, public)
    try:
        sock = admin_socket(app)
        assert len(str(home / "admin.sock")) > 100
        assert sock.parent.parent == Path(tempfile.gettempdir())
        assert sock.parent.name.startswith("tideflow-") and sock.parent.name != "tideflow-"
        assert (mode(sock.parent), mode(sock)) == (0o700, 0o600)
        assert as_other_user(home, sock)["ask"] == "PermissionError"
        assert f"the state directory {home} is open to other users (mode 755)" in app.log()
        queried = app.cli("query", "SELECT count(*) AS n FROM {table}", "--format", "json")
        assert queried.returncode == 0, queried.stderr
        assert json.loads(queried.stdout) == [{"n": 0}]
        assert app.stop() == 0
    finally:
        app.close()
    assert not sock.parent.exists()
