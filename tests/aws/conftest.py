"""Servers for the aws tests, started once per session on free loopback ports.

- AWS: moto's server (``moto_server``, from ``moto[server]`` in requirements-dev.txt),
  reached by boto3 through ``AWS_ENDPOINT_URL``. It delivers S3 notifications to SQS.
- PostgreSQL 15: a throwaway cluster (``initdb``/``pg_ctl`` from
  ``/usr/lib/postgresql/15/bin``, run as the ``postgres`` user when the tests run as root,
  since PostgreSQL refuses root) in a temp dir; ``make setup-dev`` installs it with apt.
  It offers TLS with a certificate for 127.0.0.1 from a CA made for the session
  (``openssl``, which Debian's PostgreSQL packages depend on); the tests' URLs say
  ``sslmode=disable`` unless they test TLS.

A missing server fails the tests that need it with the command that installs it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
PG_BIN = Path(os.environ.get("TIDEFLOW_PG_BIN", "/usr/lib/postgresql/15/bin"))
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's server on a free port; the session's boto3 clients point at it."""
    if not MOTO_SERVER.exists():
        pytest.fail(f"{MOTO_SERVER} is missing: run `make setup-dev` (moto[server])")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    saved = {k: os.environ.get(k) for k in [*AWS_ENV, "AWS_ENDPOINT_URL"]}
    os.environ.update(AWS_ENV)
    os.environ["AWS_ENDPOINT_URL"] = url
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                    break
            except urllib.error.HTTPError:
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


class PostgresCluster:
    """A throwaway PostgreSQL 15 cluster in a temp dir, on a free port."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tideflow-pg-"))
        self.data, sockets = self.root / "data", self.root / "sock"
        sockets.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(sockets, "postgres")
        port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{port}"
        self.tls = self.root / "tls"
        self.ca_file = self.tls / "ca.crt"
        self.options = (
            f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100 "
            f"-c ssl=on -c ssl_cert_file={self.tls / 'server.crt'} "
            f"-c ssl_key_file={self.tls / 'server.key'}"
        )

    def _make_certificates(self) -> None:
        """A CA, and a certificate it signs for 127.0.0.1 (so verify-full can pass)."""
        self.tls.mkdir()
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        run = functools.partial(subprocess.run, check=True, capture_output=True, cwd=self.tls)
        run(["openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "3", "-subj", "/CN=tideflow test CA"])  # fmt: skip
        run(["openssl", "req", *ec, "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1"])  # fmt: skip
        (self.tls / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey",
             "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "3",
             "-extfile", "san.ext"])  # fmt: skip
        (self.tls / "server.key").chmod(0o600)
        if os.geteuid() == 0:
            for path in (self.tls, *self.tls.iterdir()):
                shutil.chown(path, "postgres")

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), *args]),
            check=True,
            capture_output=True,
        )

    def init(self) -> None:
        self._make_certificates()
        initdb = [str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]
        subprocess.run(
            _as_postgres([*initdb, "-E", "UTF8", "--no-sync"]), check=True, capture_output=True
        )

    def start(self) -> None:
        self._pg_ctl("-o", self.options, "-l", str(self.root / "pg.log"), "-w", "start")

    def stop(self) -> None:
        """Stop as for a restart: clients' connections are cut, new ones refused. ("fast",
        not "immediate": with synchronous_commit=off a crash may lose the last commits.)"""
        self._pg_ctl("-m", "fast", "-w", "stop")

    def log(self) -> str:
        log = self.root / "pg.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"{PG_BIN / 'initdb'} is missing: run `make setup-dev` (it apt-installs it)")
    cluster = PostgresCluster()
    try:
        cluster.init()
        cluster.start()
    except subprocess.CalledProcessError as exc:
        detail = cluster.log()
        shutil.rmtree(cluster.root, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {exc.stderr!r}\n{detail}")
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(postgres_cluster: PostgresCluster) -> str:
    """The session cluster's base URL (no database)."""
    return postgres_cluster.url


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh database in the session's cluster."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    # Plain TCP: the throwaway cluster has no TLS (tideflow verifies TLS unless told).
    return f"{postgres_server}/{name}?sslmode=disable"


@pytest.fixture
def names() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {"bucket": f"tideflow-test-{suffix}", "queue": f"tideflow-test-{suffix}"}
