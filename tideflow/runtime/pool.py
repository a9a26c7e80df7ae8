"""One consumer's replicas: worker thread + replica process pairs, added and removed while
the run goes on.

A replica added later is not counted (``/healthz``'s ``consumers_ready``, the autoscaler's
replica count) until its dependencies are built. Removing one halts its worker, which
finishes or hands back the batch in hand before its replica stops; until then it is
listed as ``stopping``. The highest index goes first, so indices stay 0..n-1.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from tideflow.runtime.worker import ConsumerWorker


@dataclasses.dataclass(frozen=True)
class ReplicaSample:
    """What one ready replica had used when sampled (cumulative since it started)."""

    name: str
    pid: int | None
    cpu_seconds: float | None
    busy_seconds: float


class ReplicaPool:
    """The replicas of consumer ``name``; ``make_worker(index)`` builds an unstarted pair."""

    def __init__(self, name: str, make_worker: Callable[[int], ConsumerWorker]) -> None:
        self.name = name
        self._make_worker = make_worker
        self._lock = threading.Lock()
        self._live: dict[int, ConsumerWorker] = {}
        self._joining: set[int] = set()  # added while running and not yet ready once
        self._stopping: list[ConsumerWorker] = []
        self._done_by_gone = 0
        self._closed = False

    def add(self, count: int, *, counted: bool = False) -> list[str]:
        """Start ``count`` replicas at the lowest free indices; their names. ``counted``:
        count them at once (the run's first replicas, which readiness waits for)."""
        started = []
        with self._lock:
            if self._closed:
                return []
            for _ in range(count):
                # A stopping replica keeps its name until it is gone.
                taken = set(self._live) | {w.replica.spec.index for w in self._stopping}
                index = next(i for i in range(len(taken) + 1) if i not in taken)
                worker = self._make_worker(index)
                self._live[index] = worker
                if not counted:
                    self._joining.add(index)
                worker.start()
                started.append(worker.replica.name)
        return started

    def remove(self, count: int) -> list[str]:
        """Halt the ``count`` highest-index replicas (never returns before they are asked
        to stop, never waits for them); their names."""
        removed = []
        with self._lock:
            for index in sorted(self._live, reverse=True)[:count]:
                worker = self._live.pop(index)
                self._joining.discard(index)
                worker.halt()
                self._stopping.append(worker)
                removed.append(worker.replica.name)
        return removed

    def close(self) -> list[ConsumerWorker]:
        """Halt every replica and refuse new ones; all workers still running, to join."""
        with self._lock:
            self._closed = True
            workers = [*self._live.values(), *self._stopping]
        for worker in workers:
            worker.halt()
        return workers

    def _settle(self) -> None:
        """Count joining replicas that became ready; forget stopped ones. Under the lock."""
        for index in list(self._joining):
            if self._live[index].replica.state() == "ready":
                self._joining.discard(index)
        for worker in [w for w in self._stopping if not w.is_alive()]:
            self._stopping.remove(worker)
            self._done_by_gone += worker.events_done

    def states(self) -> dict[str, str]:
        """Every live replica's ``ready``, ``starting``, ``dead`` or ``stopping``."""
        with self._lock:
            self._settle()
            states = {w.replica.name: w.replica.state() for w in self._live.values()}
            states.update({w.replica.name: "stopping" for w in self._stopping})
            return states

    def ready(self) -> bool:
        """At least one replica counts, and every counted one is ready."""
        with self._lock:
            self._settle()
            counted = [w for i, w in self._live.items() if i not in self._joining]
            return bool(counted) and all(w.replica.state() == "ready" for w in counted)

    def ready_count(self) -> int:
        with self._lock:
            self._settle()
            return sum(w.replica.state() == "ready" for w in self._live.values())

    def changing(self) -> int:
        """Replicas starting (or restarting) or stopping."""
        with self._lock:
            self._settle()
            not_ready = sum(w.replica.state() != "ready" for w in self._live.values())
            return not_ready + len(self._stopping)

    def events_done(self) -> int:
        """Events acked or dead-lettered by this consumer's replicas since the run started."""
        with self._lock:
            self._settle()
            workers = [*self._live.values(), *self._stopping]
            return self._done_by_gone + sum(w.events_done for w in workers)

    def samples(self) -> list[ReplicaSample]:
        """CPU and busy time of each ready replica."""
        with self._lock:
            workers = [w for w in self._live.values() if w.replica.state() == "ready"]
        return [
            ReplicaSample(
                name=w.replica.name,
                pid=w.replica.pid,
                cpu_seconds=w.replica.cpu_seconds(),
                busy_seconds=w.busy_seconds(),
            )
            for w in workers
        ]
