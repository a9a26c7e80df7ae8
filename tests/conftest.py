"""Shared fixtures: run a real ``tideflow`` command line against a project in a temp state dir."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``"4m"``) mounted on ``path`` (made if missing), to fill up:
    a real full disk. Skips the test when not root or when the mount is refused; always
    unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("a small tmpfs needs root (mount -t tmpfs)")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        # Lazily, so that a process still holding a file there cannot keep it mounted.
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill_disk(path: Path) -> Path:
    """Write zeros to file ``path`` until its disk is full; the file (delete it to free)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:  # a short write fills the last bytes, the next one gets ENOSPC
            try:
                os.write(fd, bytes(64 * 1024))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return path
    finally:
        os.close(fd)


class TideflowProcess:
    """A ``tideflow run`` subprocess on a free port with its own ``TIDEFLOW_HOME``."""

    def __init__(self, *, project_dir: Path, home: Path, env: dict[str, str] | None = None) -> None:
        self.project_dir = project_dir
        self.home = home
        self.port = free_port()
        self.env = {
            **os.environ,
            # This checkout's tideflow, even where the venv's editable install points at
            # another one (a git worktree) and the project is not the repository root.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "TIDEFLOW_HOME": str(home),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": "200",  # keep Rich tables unwrapped
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = home.parent / f"{home.name}-run.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.python("-m", "tideflow", *args, timeout=timeout)

    def python(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``python ARGS`` in the project folder, with this run's environment."""
        return subprocess.run(
            [sys.executable, *args],
            cwd=self.project_dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str, wait_consumers: bool = True, timeout: float = 120) -> None:
        self.launch(*args)
        self.wait_ready(wait_consumers=wait_consumers, timeout=timeout)

    def launch(self, *args: str) -> None:
        """Start ``tideflow run`` without waiting (``wait_ready`` waits)."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tideflow", "run", "--port", str(self.port), *args],
            cwd=self.project_dir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def wait_ready(self, *, wait_consumers: bool = True, timeout: float = 120) -> None:
        """Until /healthz answers (and, with ``wait_consumers``, every replica is ready)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"tideflow run exited early:\n{self.log()}")
            try:
                health = httpx.get(f"{self.base_url}/healthz", timeout=2).json()
                if health["consumers_ready"] or not wait_consumers:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"tideflow run not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            self.process = None

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)
        self.process = None

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def tideflow_factory(tmp_path: Path) -> Iterator[Callable[..., TideflowProcess]]:
    """``factory(project_dir, env=...)`` -> a not yet started ``TideflowProcess``."""
    started: list[TideflowProcess] = []

    def factory(project_dir: Path, *, env: dict[str, str] | None = None) -> TideflowProcess:
        app = TideflowProcess(project_dir=project_dir, home=tmp_path / "home", env=env)
        started.append(app)
        return app

    yield factory
    for app in started:
        app.close()


@pytest.fixture(scope="session")
def mobilenet_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """torchvision's real MobileNetV2 architecture with random weights, saved like the
    official file (a plain state_dict under the official name).

    Plain random initialisation makes activations vanish (all logits ~1e-9, every class
    0.1%), which would make any ordering test meaningless. So, as a stand-in for training,
    BatchNorm statistics are calibrated on smooth random images and the classifier is scaled
    to logits with a std of ~3: the top-5 then differs from photo to photo with clear gaps.
    """
    import torch
    import torchvision

    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(weights=None)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the calibration batch
            module.reset_running_stats()
    calibration = torch.nn.functional.interpolate(
        torch.randn(16, 3, 14, 14, generator=generator), size=224, mode="bilinear"
    )
    with torch.no_grad():
        model.train()
        model(calibration)
        model.eval()
        logits = model(calibration)
        model.classifier[1].weight.mul_(3.0 / logits.std())
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2-b0353104.pth"
    torch.save(model.state_dict(), path)
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One xdist group per test folder (``make test`` runs ``pytest -n N --dist loadgroup``):
    a folder's tests run on one worker, so its session servers (the emulators, moto,
    PostgreSQL, the shared app) start once, while the folders run side by side."""
    tests = REPO / "tests"
    for item in items:
        folder = item.path.relative_to(tests).parts[0]
        item.add_marker(pytest.mark.xdist_group(folder))
