"""An existing PostgreSQL database, its connection settings, pool and error translation.

``PostgresDatabase(url)`` is an existing database (``POSTGRES_URL`` when ``url`` is None,
e.g. ``postgresql://user:password@host:5432/db``; on AWS that is RDS or Aurora): tideflow
creates tables in it (``tideflow.io.postgres.table``), never the server or the database.
Its settings, ``POSTGRES_URL`` and ``PGSSLMODE``, are read once, when it is made.

Connections: TCP keepalives (idle 30 s, then 3 probes 10 s apart) and
``tcp_user_timeout`` 60 s find a server that vanished without closing the connection (a
failover, a changed security group) in about a minute, not the OS's 2 hours; every
statement has ``statement_timeout`` 60 s and ``lock_timeout`` 10 s (apply lifts them for
its own back-fills and DDL), so a write stuck behind a lock is retried, not left hanging.
The URL's own parameters win (``?options=-c%20statement_timeout%3D120s``). TLS is
verified by default: ``sslmode=verify-full`` unless the URL (or ``PGSSLMODE``) sets
another; give the server's CA with ``sslrootcert=/path/to/ca.pem`` (RDS and Aurora: AWS's
``global-bundle.pem``) or ``sslrootcert=system``. A missing certificate, or a server
without TLS, stops with a ``ConfigError`` that says which to set. Each process keeps a
small pool of connections (``pool_size``, default 8) shared by its threads.

Errors: psycopg's errors become tideflow errors (``tideflow.io.errors``); those the server
may get over (``unavailable()``: connection problems, SQLSTATE classes 08 and 57, a
read-only server 25006 during a failover, conflicts and deadlocks of class 40, timeouts,
and class 42 errors that are not about a row's data, such as 42501 permission denied or
42P01/42703 a missing table or column) become the caller's ``unavailable`` error.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import re
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from tideflow.exceptions import ConfigError, PrimitiveError, TideflowError
from tideflow.io.errors import Call, ErrorMap, one_line
from tideflow.io.primitive import PlanAction, PlanStep, Primitive, ProcessLocal
from tideflow.io.settings import env_text

URL_ENV = "POSTGRES_URL"
# Connection settings unless the URL sets them (see the module docstring).
CONNECTION_DEFAULTS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    "tcp_user_timeout": "60000",
}
STATEMENT_OPTIONS = "-c statement_timeout=60s -c lock_timeout=10s"
DEFAULT_SSLMODE = "verify-full"
# How long a thread waits for one of the pool's connections before giving up.
POOL_WAIT_SECONDS = 30.0
# SQLSTATEs of class 42 that are about a row's values (a number too big for its column,
# a value of the wrong type), not about the table or the grants.
_ROW_DATA_STATES = {"42804", "42846", "42P08", "42P18"}
_SECRET_PARAMETERS = re.compile(r"(^|&)((?:ssl)?password)=[^&]*")


def redacted(url: str) -> str:
    """``url`` without its passwords (user info, ``?password=``, ``?sslpassword=``), for
    messages and primitive ids."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@")
    query = _SECRET_PARAMETERS.sub(r"\1\2=***", parts.query)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


@dataclasses.dataclass(frozen=True)
class PostgresSettings:
    """``POSTGRES_URL`` (when no URL is given) and ``PGSSLMODE``: libpq's own default TLS
    mode, which tideflow then leaves to libpq."""

    url: str = dataclasses.field(repr=False)  # may hold a password
    sslmode: str | None = None

    @classmethod
    def from_environ(
        cls, url: str | None = None, environ: Mapping[str, str] = os.environ
    ) -> PostgresSettings:
        url = url or env_text(environ, URL_ENV)
        if not url:
            raise ConfigError(
                f"no PostgreSQL database: set {URL_ENV}=postgresql://user:password@host:5432/db"
            )
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"{URL_ENV} must start with postgresql://, got {redacted(url)}")
        return cls(url=url, sslmode=env_text(environ, "PGSSLMODE"))

    def connection_settings(self) -> dict[str, str]:
        """What ``psycopg.connect(url, **settings)`` adds to the URL: the defaults it lacks,
        the statement timeouts (before the URL's own ``options``, which win), and TLS
        verification unless the URL or ``PGSSLMODE`` chose a mode."""
        given = conninfo_to_dict(self.url)
        settings = {k: v for k, v in CONNECTION_DEFAULTS.items() if k not in given}
        own = given.get("options")
        settings["options"] = f"{STATEMENT_OPTIONS} {own}" if own else STATEMENT_OPTIONS
        if "sslmode" not in given and not self.sslmode:
            settings["sslmode"] = DEFAULT_SSLMODE
        return settings


def unavailable(exc: psycopg.Error) -> bool:
    """True when the server cannot take any write now, whatever the rows (see the module
    docstring); False when it refused these rows."""
    state = exc.sqlstate or ""
    if isinstance(exc, psycopg.OperationalError) or state == "25006":
        return True
    return state[:2] in ("08", "40", "53", "57") or (
        state[:2] == "42" and state not in _ROW_DATA_STATES
    )


def refuses_rows(exc: psycopg.Error) -> bool:
    """The server refused these rows for their data (the others may go in)."""
    return isinstance(
        exc, psycopg.DataError | psycopg.IntegrityError | psycopg.ProgrammingError
    ) and not unavailable(exc)


def _tls_problem(exc: psycopg.Error) -> str | None:
    """What to set when ``exc`` is libpq refusing to connect without verified TLS."""
    text = str(exc)
    if "root certificate file" in text:
        return (
            "no CA certificate to verify the server with (tideflow uses sslmode=verify-full "
            "unless POSTGRES_URL sets sslmode): add sslrootcert=/path/to/ca.pem to "
            "POSTGRES_URL (RDS and Aurora: AWS's global-bundle.pem), or sslrootcert=system "
            "for a certificate from a public CA"
        )
    if "server does not support SSL" in text:
        return (
            "the server offers no TLS, and tideflow verifies TLS by default "
            "(sslmode=verify-full): turn TLS on in the server, or on a network you trust "
            "set sslmode=disable in POSTGRES_URL"
        )
    return None


class PostgresErrors(ErrorMap):
    """psycopg's errors; a connection refused for want of verified TLS is a
    ``ConfigError`` that says what to set."""

    catches = (psycopg.Error,)

    def code(self, exc: BaseException) -> str:
        return str(getattr(exc, "sqlstate", None) or "")

    def transient(self, exc: BaseException) -> bool:
        return isinstance(exc, psycopg.Error) and unavailable(exc)

    def translate(self, exc: BaseException, call: Call) -> TideflowError:
        problem = _tls_problem(exc) if isinstance(exc, psycopg.Error) else None
        if problem is not None:
            return ConfigError(f"PostgreSQL {call.resource}: {problem}")
        return call.error(f"PostgreSQL {call.resource}: {one_line(str(exc), limit=4000)}")


POSTGRES_ERRORS = PostgresErrors()


class _Pool:
    """Up to ``size`` autocommit-off connections, shared by a process's threads."""

    def __init__(self, settings: PostgresSettings, size: int) -> None:
        self.url = settings.url
        self.size = size
        self._settings: dict[str, Any] = settings.connection_settings()
        self._idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        # Bounded, so that readers holding every connection delay a writer, not stall it.
        if not self._slots.acquire(timeout=POOL_WAIT_SECONDS):
            raise psycopg.OperationalError(
                f"all {self.size} connections of this process were busy for {POOL_WAIT_SECONDS:g} s"
            )
        conn: psycopg.Connection[Any] | None = None
        try:
            try:
                conn = self._idle.get_nowait()
                if conn.closed or conn.broken:
                    conn = None
            except queue.Empty:
                conn = None
            if conn is None:
                conn = psycopg.connect(self.url, **self._settings)
            yield conn
            if not conn.closed and not conn.broken:
                conn.rollback()  # leave no transaction open between uses
                self._idle.put(conn)
                conn = None
        finally:
            if conn is not None:
                if conn.broken:
                    # The server went away (a restart, a failover): the idle connections
                    # are most likely cut too, and would each fail once more.
                    self.close()
                conn.close()
            self._slots.release()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class PostgresDatabase(ProcessLocal, Primitive):
    """An existing PostgreSQL database; tideflow creates tables in it, not the database."""

    process_local = ("_pool",)

    def __init__(self, url: str | None = None, *, pool_size: int = 8) -> None:
        self.settings = PostgresSettings.from_environ(url)
        self.url = self.settings.url
        self.pool_size = pool_size
        self._pool: _Pool | None = None
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return redacted(self.url)

    def pool(self) -> _Pool:
        with self._lock:
            if self._pool is None:
                self._pool = _Pool(self.settings, self.pool_size)
            return self._pool

    @contextmanager
    def connection(
        self,
        error: type[TideflowError] = PrimitiveError,
        unavailable_error: type[TideflowError] | None = None,
    ) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; psycopg errors become ``error`` (kept as ``__cause__``), or
        ``unavailable_error`` when given for what may pass (see ``unavailable()``)."""
        with (
            POSTGRES_ERRORS.translated(
                resource=self.where, action="use", error=error, unavailable=unavailable_error
            ),
            self.pool().connection() as conn,
        ):
            yield conn

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def primitive_id(self) -> str:
        return f"postgres-database:{self.where}"

    def plan(self) -> PlanStep:
        with self.connection() as conn:
            conn.execute("SELECT 1")
        return self.step(PlanAction.NO_CHANGE, "exists (tideflow never creates the database)")

    def plan_destroy(self) -> PlanStep:
        return self.step(PlanAction.NO_CHANGE, "kept (tideflow never drops the database)")

    def apply(self) -> PlanStep:
        return self.plan()

    def destroy(self) -> PlanStep:
        step = self.plan_destroy()
        self.close()
        return step
