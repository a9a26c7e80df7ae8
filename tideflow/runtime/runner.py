"""``tideflow run``: the service, the consumers and their replicas in one run process.

Start-up: take the stack's run lock, apply missing primitives (``--only consumers`` only
checks that they exist: consumer machines need no admin rights), build GLOBAL
dependencies, release leases a crashed run left behind, start each source's watcher,
one worker thread plus replica process per replica (a ``ReplicaPool``, which the
consumer's ``Autoscaler`` resizes when it scales), then the HTTP server. SIGINT or
SIGTERM stops intake, lets in-flight batches finish (or hands them back), and exits 0.

``/healthz`` answers 503 ``"degraded"`` while a local store cannot be written (a full or
read-only disk under the bucket or its journal: uploads are refused), so that a load
balancer or a readiness probe takes this replica out of rotation; it answers 200 again
once a probe write succeeds. ``/livez`` stays 200 while the process serves: a liveness
probe belongs there, since restarting does not free a disk.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tideflow import infra
from tideflow.consumers import Consumer
from tideflow.dependencies import Resolver, Scope
from tideflow.exceptions import ConfigError, SourceError
from tideflow.flow import Flow
from tideflow.io.strategies import Sink, Source
from tideflow.io.write_health import write_problems
from tideflow.runtime import metrics
from tideflow.runtime.access import LocalAccess
from tideflow.runtime.admin import (
    OwnerOnlyH11Protocol,
    admin_app,
    admin_socket_path,
    bind_owner_only,
)
from tideflow.runtime.autoscaler import Autoscaler, machine_cpus, plan_replicas
from tideflow.runtime.http import server_options
from tideflow.runtime.lock import run_lock
from tideflow.runtime.options import RunOptions, RunPart
from tideflow.runtime.pool import ReplicaPool
from tideflow.runtime.replica import ReplicaProcess, ReplicaSpec
from tideflow.runtime.worker import ConsumerWorker

logger = logging.getLogger("tideflow.run")

STOP_GRACE_SECONDS = 8.0


@dataclasses.dataclass
class _RunningConsumer:
    consumer: Consumer
    source: Source
    sink: Sink
    pool: ReplicaPool


class FlowRunner:
    def __init__(self, flow: Flow, options: RunOptions) -> None:
        self.flow = flow
        self.options = options
        self.stop_event = threading.Event()
        self.fatal_error: str | None = None
        self._consumers: list[_RunningConsumer] = []
        self._servers: list[tuple[uvicorn.Server, threading.Thread]] = []
        self._admin_socket: Path | None = None

    @property
    def runs_consumers(self) -> bool:
        return self.options.only in (None, RunPart.CONSUMERS)

    @property
    def runs_service(self) -> bool:
        return self.options.only in (None, RunPart.SERVICE) and bool(self.flow.services)

    def consumers_ready(self) -> bool:
        """Every consumer's replicas are ready (those added by its autoscaler once ready)."""
        return bool(self._consumers) and all(c.pool.ready() for c in self._consumers)

    def replica_states(self) -> dict[str, str]:
        """Each live replica's ``ready``, ``starting``, ``dead`` (exited, not yet restarted)
        or ``stopping`` (removed by the autoscaler, finishing its batch)."""
        return {name: state for c in self._consumers for name, state in c.pool.states().items()}

    def run(self) -> int:
        """Run until a signal arrives; the process exit code."""
        with admin_socket_path(self.options.home) as sock:
            return self._run(sock)

    def _run(self, sock: Path) -> int:
        info = {"url": f"http://{self.options.host}:{self.options.port}"}
        if self.runs_consumers and self.flow.consumers:
            info["admin_socket"] = str(sock)  # served by the process that runs them
        with run_lock(self.options.home, info):
            self._warn_if_shared(self.options.home)
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: self.stop_event.set())
            started = time.monotonic()
            if self.options.only is RunPart.CONSUMERS:
                self._check_present()
            else:
                self._apply_missing()
            resolver = Resolver(overrides=self.flow.dependency_overrides)
            for consumer in self.flow.consumers:
                resolver.warm_up(consumer.function, scopes={Scope.GLOBAL})
            # A consumers-only run still answers /healthz and /metrics on its port: the
            # probes and scalers of a container platform ask there.
            self._serve(
                self._http_app(resolver) if self.runs_service else self._health_app(),
                host=self.options.host,
                port=self.options.port,
            )
            if self.runs_consumers:
                for consumer in self.flow.consumers:
                    self._start_consumer(consumer, resolver.global_values)
                self._serve_admin(sock)
            logger.info("started in %.2fs", time.monotonic() - started)
            self.stop_event.wait()
            self._shutdown()
            # The service's REPLICA values, this process's PROCESS values, then GLOBAL ones.
            resolver.shutdown()
        if self.fatal_error:
            logger.error("stopped: %s", self.fatal_error)
            return 1
        return 0

    @staticmethod
    def _warn_if_shared(home: Path) -> None:
        # tideflow creates the state directory 0700; one made before (or by hand) may be
        # open to others, who could then read the uploads, journal and warehouse.
        mode = home.stat().st_mode & 0o777
        if mode & 0o077:
            logger.warning(
                "the state directory %s is open to other users (mode %o); `chmod 700 %s` "
                "keeps its uploads, journal and warehouse private",
                home,
                mode,
                home,
            )

    def _fatal(self, message: str) -> None:
        self.fatal_error = self.fatal_error or message
        self.stop_event.set()

    def _apply_missing(self) -> None:
        for step in infra.apply(self.flow):
            if step.changes:
                logger.info(
                    "applied %s: %s %s",
                    step.primitive_id,
                    step.action.value,
                    step.detail,
                )

    def _check_present(self) -> None:
        """Refuse to start when a primitive is missing or differs; never change anything."""
        for primitive in self.flow.primitives():
            step = primitive.check()
            if step.changes:
                detail = f" ({step.detail})" if step.detail else ""
                raise ConfigError(
                    f"{step.primitive_id}: {step.action.value}{detail} needed; run `tideflow "
                    "apply` first (`run --only consumers` never creates, grants or alters "
                    "resources)"
                )

    def _start_consumer(self, consumer: Consumer, global_values: dict[Any, Any]) -> None:
        source = consumer.source.source()
        released = _release_leases(consumer.name, source)
        if released:
            logger.info(
                "%s: %d event(s) leased by an earlier run are redelivered",
                consumer.name,
                released,
            )
        source.start()
        sink = consumer.sink.sink()
        failures = consumer.sink.failure_log()
        asked = consumer.num_replicas or self.options.replicas or self.flow.options.num_replicas
        plan = plan_replicas(consumer.autoscaling, asked=asked, cpus=machine_cpus())
        if asked and asked != plan.start:
            logger.info(
                "consumer %s: %d replica(s) asked, %d within min_replicas..max_replicas",
                consumer.name,
                asked,
                plan.start,
            )

        def make_worker(index: int) -> ConsumerWorker:
            spec = ReplicaSpec(
                entry_point=self.options.entry_point,
                project_dir=str(self.options.project_dir),
                consumer_name=consumer.name,
                index=index,
                count=plan.most,
                num_concurrency=consumer.num_concurrency,
                global_values=global_values,
                log_level=self.options.log_level,
            )
            return ConsumerWorker(
                replica=ReplicaProcess(spec),
                source=source,
                sink=sink,
                failures=failures,
                batch_size=consumer.batch_size,
                lease_seconds=consumer.source.lease_seconds,
                event_timeout=self.options.event_timeout,
                stop=threading.Event(),
                on_fatal=self._fatal,
            )

        pool = ReplicaPool(consumer.name, make_worker)
        pool.add(plan.start, counted=True)
        metrics.QUEUES.watch(consumer.name, source.stats, failures.count, pool.ready_count)
        self._consumers.append(_RunningConsumer(consumer, source, sink, pool))
        if plan.policy is None:
            logger.info("consumer %s: %d replica(s) starting", consumer.name, plan.start)
            return
        options = consumer.autoscaling
        Autoscaler(
            pool,
            stats=source.stats,
            policy=plan.policy,
            frequency=options.frequency_seconds,
            stop=self.stop_event,
        ).start()
        logger.info(
            "consumer %s: %d replica(s) starting, autoscaling %d..%d every %gs (backlog burn "
            "threshold %gs, CPU target %g%%)",
            consumer.name,
            plan.start,
            plan.policy.min_replicas,
            plan.policy.max_replicas,
            options.frequency_seconds,
            options.backlog_burn_seconds,
            options.cpu_percent_target,
        )

    def _http_app(self, resolver: Resolver) -> FastAPI:
        app = self.flow.services[0].build_app(resolver=resolver)
        self._add_health_routes(app)
        return app

    def _health_app(self) -> FastAPI:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
        self._add_health_routes(app)
        return app

    def _add_health_routes(self, app: FastAPI) -> None:
        @app.get("/healthz", include_in_schema=False)
        def healthz() -> JSONResponse:
            problems = write_problems()
            health: dict[str, Any] = {
                "status": "degraded" if problems else "ok",
                "consumers_ready": self.consumers_ready(),
                "replicas": self.replica_states(),
            }
            if problems:
                health["problems"] = problems
            return JSONResponse(health, status_code=503 if problems else 200)

        @app.get("/livez", include_in_schema=False)
        def livez() -> JSONResponse:
            return JSONResponse({"status": "alive"})

        @app.get("/metrics", include_in_schema=False)
        def prometheus_metrics() -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    def _serve(
        self, app: Any, *, host: str = "", port: int = 0, sock: socket.socket | None = None
    ) -> None:
        """Serve ``app`` on ``host:port``, or as the admin API on the bound Unix ``sock``."""
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning" if sock else self.options.log_level.lower(),
            access_log=False,
            timeout_graceful_shutdown=3,
            **({"http": OwnerOnlyH11Protocol} if sock else server_options()),
        )
        server = uvicorn.Server(config)
        # Uvicorn off the main thread leaves signal handling to us.
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]} if sock else {},
            name="tideflow-http",
            daemon=True,
        )
        thread.start()
        while not server.started:
            if not thread.is_alive():
                where = sock.getsockname() if sock else f"{host}:{port}"
                raise ConfigError(f"the HTTP server could not start on {where} (port in use?)")
            time.sleep(0.02)
        self._servers.append((server, thread))

    def _serve_admin(self, sock: Path) -> None:
        """Every consumer's table and dead letters, and every table of the flow, for the
        commands and scripts that cannot open them while this process does."""
        if self.flow.consumers:
            sources = {r.consumer.name: r.source for r in self._consumers}
            app = admin_app(LocalAccess(self.flow, sources=sources))
            self._serve(app, sock=bind_owner_only(sock))
            self._admin_socket = sock

    def _shutdown(self) -> None:
        logger.info("stopping")
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for server, _ in self._servers:
            server.should_exit = True
        closing = [(running, running.pool.close()) for running in self._consumers]
        for _, workers in closing:
            for worker in workers:
                worker.join(max(0.0, deadline - time.monotonic()))
        for running, workers in closing:
            for worker in workers:
                if worker.is_alive():
                    worker.replica.kill()
            # Hand back whatever a worker could not finish, for the next run.
            _release_leases(running.consumer.name, running.source)
            running.source.close()
            running.sink.close()
        for _, thread in self._servers:
            thread.join(max(0.5, deadline + 1.5 - time.monotonic()))
        if self._admin_socket is not None:
            self._admin_socket.unlink(missing_ok=True)
        metrics.QUEUES.clear()


def _release_leases(consumer_name: str, source: Source) -> int:
    """Hand every leased event back; when the source cannot take it now (its journal's disk
    is full) the leases run out by themselves, so this only delays those events."""
    try:
        return source.release_all()
    except SourceError as exc:
        logger.warning(
            "%s: could not hand back leased events (they come back when their leases run out): %s",
            consumer_name,
            exc,
        )
        return 0
