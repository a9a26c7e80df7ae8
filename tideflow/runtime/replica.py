"""Consumer replicas: one OS process each, holding its REPLICA-scoped dependencies.

Each replica process has ``TIDEFLOW_REPLICA_INDEX`` and ``TIDEFLOW_REPLICAS`` (how many
replicas its consumer runs; at most, when it autoscales) in its environment, e.g. to share
CPU threads out fairly.

The parent sends batches of events over a pipe; the replica answers with one outcome
per event, processing ``num_concurrency`` of them at once (threads). Replicas run at a lower
OS priority (nice 5) than the run process, which serves HTTP. A replica whose parent
disappears sees the pipe close and exits.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import dataclasses
import functools
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tideflow.dependencies import Resolver, Scope, get_dependant
from tideflow.exceptions import NonRetryableError, ReplicaError
from tideflow.runtime.loader import load_flow
from tideflow.types import FileChangeEvent

logger = logging.getLogger("tideflow.replica")

REPLICA_INDEX_ENV = "TIDEFLOW_REPLICA_INDEX"
REPLICAS_ENV = "TIDEFLOW_REPLICAS"
_BUILD_SCOPES = {Scope.GLOBAL, Scope.PROCESS, Scope.REPLICA}
REPLICA_NICENESS = 5
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ReplicaKilledError(ReplicaError):
    """The replica process was killed by a signal (kill -9, the OOM killer): start another."""


@dataclasses.dataclass(frozen=True)
class ReplicaSpec:
    entry_point: str
    project_dir: str
    consumer_name: str
    index: int
    count: int
    num_concurrency: int
    global_values: dict[Any, Any]
    log_level: str


@dataclasses.dataclass(frozen=True)
class Outcome:
    ok: bool
    rows: list[Any]
    error: str | None
    retryable: bool
    seconds: float


def replica_main(spec: ReplicaSpec, conn: multiprocessing.connection.Connection) -> None:
    # Ctrl-C reaches the whole process group; the run process decides when replicas stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Consumers are the elastic part (a backlog may grow); the HTTP process taking uploads
    # must not starve behind them on a busy machine.
    os.nice(REPLICA_NICENESS)
    os.environ[REPLICA_INDEX_ENV] = str(spec.index)
    os.environ[REPLICAS_ENV] = str(spec.count)
    logging.basicConfig(level=spec.log_level, format="%(levelname)s %(name)s: %(message)s")
    overrides: dict[Any, Any] = {}  # the flow's, once it is loaded
    resolver = Resolver(global_values=spec.global_values, overrides=overrides)
    try:
        flow = load_flow(spec.entry_point, Path(spec.project_dir))
        overrides.update(flow.dependency_overrides)
        consumer = flow.consumer_named(spec.consumer_name)
        resolver.warm_up(consumer.function, scopes=_BUILD_SCOPES)
    except Exception as exc:
        logger.debug("replica start failed", exc_info=True)
        resolver.shutdown()  # clean up what was built before the failure
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    dependant = get_dependant(consumer.function)
    process = functools.partial(
        _process, consumer.function, consumer.event_param, dependant, resolver
    )
    if spec.num_concurrency > 1:
        _limit_malloc_arenas()
    threads = concurrent.futures.ThreadPoolExecutor(
        spec.num_concurrency, thread_name_prefix="tideflow-consumer"
    )
    try:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                break
            if message[0] == "stop":
                break
            events: list[FileChangeEvent] = message[1]
            if spec.num_concurrency == 1:
                outcomes = [process(event) for event in events]
            else:
                outcomes = list(threads.map(process, events))
            conn.send(("done", outcomes))
    finally:
        threads.shutdown()
        resolver.shutdown()  # REPLICA values, then this process's PROCESS values


def _limit_malloc_arenas() -> None:
    """Have glibc share two malloc arenas among the consumer threads: by default each thread
    may get its own, and memory freed there (decoded images) rarely goes back to the OS.
    Measured with 2 replicas x 4 threads: peak RSS 660 -> 620 MB, the same throughput."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to tune
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, 2)


def _process(
    function: Callable[..., Any],
    event_param: str,
    dependant: Any,
    resolver: Resolver,
    event: FileChangeEvent,
) -> Outcome:
    started = time.perf_counter()
    try:
        with contextlib.ExitStack() as call_stack:
            kwargs = resolver.solve(dependant, call_stack)
            result = function(**{event_param: event}, **kwargs)
    except NonRetryableError as exc:
        return Outcome(False, [], str(exc), False, time.perf_counter() - started)
    except Exception as exc:
        logger.debug("consumer failed on %s", event.event_id, exc_info=True)
        error = f"{type(exc).__name__}: {exc}"
        return Outcome(False, [], error, True, time.perf_counter() - started)
    rows = [] if result is None else list(result) if isinstance(result, list) else [result]
    return Outcome(True, rows, None, True, time.perf_counter() - started)


class ReplicaProcess:
    """The run process's handle on one replica process."""

    def __init__(self, spec: ReplicaSpec) -> None:
        self.spec = spec
        self._context = multiprocessing.get_context("spawn")
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: multiprocessing.connection.Connection | None = None
        self.ready = False

    @property
    def name(self) -> str:
        return f"{self.spec.consumer_name}[{self.spec.index}]"

    @property
    def alive(self) -> bool:
        """The process exists and has not exited (checked now, not at the next batch)."""
        return self._process is not None and self._process.is_alive()

    @property
    def exitcode(self) -> int | None:
        return None if self._process is None else self._process.exitcode

    @property
    def pid(self) -> int | None:
        process = self._process  # read once: another thread may be replacing it
        return None if process is None else process.pid

    def cpu_seconds(self) -> float | None:
        """CPU time the process has used (user + system, all its threads), from Linux's
        ``/proc/<pid>/stat``; None elsewhere or when it is gone."""
        pid = self.pid
        if pid is None:
            return None
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                text = stat.read()
        except OSError:
            return None
        # Fields after the command name (in parentheses, which may hold spaces): utime and
        # stime are the 14th and 15th of the whole line, in clock ticks.
        fields = text[text.rindex(b")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def state(self) -> str:
        if self.ready and self.alive:
            return "ready"
        if self._process is not None and not self.alive:
            return "dead"
        return "starting"

    def start(self, *, timeout: float, should_stop: Callable[[], bool]) -> None:
        """Start the process (replacing any old one) and wait for its dependencies."""
        self.kill()
        parent_conn, child_conn = self._context.Pipe()
        process = self._context.Process(
            target=replica_main,
            args=(self.spec, child_conn),
            name=f"tideflow-{self.name}",
        )
        process.daemon = True
        process.start()
        child_conn.close()
        self._process, self._conn = process, parent_conn
        deadline = time.monotonic() + timeout
        while not parent_conn.poll(0.2):
            if not process.is_alive():
                raise self._start_failed(process)
            if should_stop():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise ReplicaError(f"replica {self.name} was not ready after {timeout:.0f}s")
        try:
            kind, detail = parent_conn.recv()
        except (EOFError, OSError):  # it died before saying whether it could start
            process.join(2)
            raise self._start_failed(process) from None
        if kind == "failed":
            process.join(5)
            raise ReplicaError(f"replica {self.name} could not start: {detail}")
        self.ready = True
        logger.info("replica %s ready (pid %s)", self.name, detail)

    def _start_failed(self, process: multiprocessing.process.BaseProcess) -> ReplicaError:
        code = process.exitcode
        if code is not None and code < 0:
            return ReplicaKilledError(
                f"replica {self.name} was killed by signal {-code} while starting"
            )
        return ReplicaError(f"replica {self.name} exited with code {code}")

    def process_batch(
        self,
        events: list[FileChangeEvent],
        *,
        timeout: float,
        heartbeat: Callable[[], None],
    ) -> list[Outcome]:
        """Outcomes for ``events``; ``heartbeat`` runs every few seconds while waiting."""
        if self._conn is None or self._process is None:
            raise ReplicaError(f"replica {self.name} is not running")
        try:
            self._conn.send(("events", events))
        except (BrokenPipeError, OSError) as exc:
            raise ReplicaError(f"replica {self.name} is gone: {exc}") from exc
        deadline = time.monotonic() + timeout
        while not self._conn.poll(2.0):
            if not self._process.is_alive():
                raise self._died()
            if time.monotonic() > deadline:
                self.kill()
                raise ReplicaError(f"replica {self.name} took longer than {timeout:.0f}s")
            heartbeat()
        try:
            _, outcomes = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise self._died() from exc
        return outcomes

    def _died(self) -> ReplicaError:
        assert self._process is not None
        self._process.join(2)  # a closed pipe can come a moment before the exit status
        code = self._process.exitcode
        return ReplicaError(f"replica {self.name} died (exit code {code}) while processing")

    def stop(self, *, timeout: float = 5.0) -> None:
        self.ready = False
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(("stop", None))
        if self._process is not None:
            self._process.join(timeout)
        self.kill()

    def kill(self) -> None:
        self.ready = False
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None
