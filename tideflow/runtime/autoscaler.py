"""BuildFlow's autoscaler: a consumer's replicas between ``min_replicas`` and ``max_replicas``.

Every ``autoscale_frequency_secs`` the run looks at the window since its last look: the
ready replicas, the events they finished (acked or dead-lettered), the source's backlog
(events waiting, not in flight), the replicas' CPU (``/proc``, percent of one core, mean
per replica) and how much of the window they spent on batches (busy). ``Policy.decide``
turns that into a replica count, first trying to scale up, then down:

- up when the backlog would take longer than ``consumer_backlog_burn_threshold`` seconds
  to burn at the measured throughput: to the replicas that burn it in that time at the
  throughput each replica had (BuildFlow's rule);
- up when the backlog grew during the window while every replica was busy: to the
  replicas that would also absorb the growth;
- up by one when events wait, none finished in the window, and the replicas are busy
  with their CPU at or above the target (events longer than the window);
- up by one when the source cannot tell its backlog (Pub/Sub without Cloud Monitoring)
  and every replica was busy and finishing events;
- down when the replicas' mean CPU is under ``consumer_cpu_percent_target`` and they were
  not all busy: to ``ceil(replicas * cpu / target)``, never below what still burns the
  backlog in time. BuildFlow rounded down and dropped replicas while a backlog was still
  being burned (its issue 112); this keeps them until it is. Where CPU cannot be read
  (no ``/proc``: not Linux), down to ``min_replicas`` once a window had nothing waiting
  and nothing done;
- nothing while a replica starts, restarts or stops: a window is measured with a fixed
  set of ready replicas, so the next decision comes a full window after a change.

Each change is one INFO line with its reason (``tideflow.autoscaler``); a decision to
stay is logged at DEBUG. Replicas are added ready-or-not and counted once ready;
removed ones finish or hand back their batch first (``ReplicaPool``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Callable

from tideflow.consumers import Autoscaling
from tideflow.exceptions import TideflowError
from tideflow.runtime.pool import ReplicaPool, ReplicaSample
from tideflow.types import SourceStats

logger = logging.getLogger("tideflow.autoscaler")

# Replicas that spent this share of a window on batches had no time to spare.
BUSY = 0.9


def machine_cpus() -> int:
    """CPUs this process may run on (a container's cpuset, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class Window:
    """What one consumer did between two looks of the autoscaler."""

    seconds: float
    replicas: int  # ready, the same ones throughout
    done: int  # events acked or dead-lettered
    backlog: int | None  # waiting at the end; None: the source cannot tell
    previous_backlog: int | None  # waiting at the start
    cpu_percent: float | None  # mean per replica, percent of one core; None: unknown
    busy: float  # mean share of the window the replicas spent on batches, 0 to 1

    @property
    def throughput(self) -> float:
        return self.done / self.seconds


@dataclasses.dataclass(frozen=True)
class Decision:
    replicas: int
    reason: str


@dataclasses.dataclass(frozen=True)
class Policy:
    min_replicas: int
    max_replicas: int
    backlog_burn_seconds: float
    cpu_percent_target: float

    def decide(self, window: Window) -> Decision:
        """The replica count for the next window, and why (see the module docstring)."""
        replicas, reason = self._up(window) or self._down(window) or (window.replicas, "")
        bounded = min(self.max_replicas, max(self.min_replicas, replicas))
        if bounded != replicas:
            limit = "max_replicas" if bounded < replicas else "min_replicas"
            reason = f"{reason}; {replicas} wanted, {limit} is {bounded}"
        return Decision(bounded, reason or self._steady(window))

    def _up(self, window: Window) -> tuple[int, str] | None:
        replicas, backlog, throughput = window.replicas, window.backlog, window.throughput
        per_replica = throughput / replicas
        busy = window.busy >= BUSY
        if backlog is None:
            if busy and throughput > 0:
                return replicas + 1, (
                    f"backlog unknown, replicas busy {window.busy:.0%} of {window.seconds:.0f}s "
                    f"at {throughput:.1f} events/s"
                )
            return None
        if backlog == 0:
            return None
        if throughput > 0:
            burn = backlog / throughput
            if burn > self.backlog_burn_seconds:
                wanted = math.ceil(backlog / self.backlog_burn_seconds / per_replica)
                return wanted, (
                    f"backlog of {backlog} would take {burn:.0f}s to burn at {throughput:.1f} "
                    f"events/s (threshold {self.backlog_burn_seconds:g}s)"
                )
            previous = window.previous_backlog
            growth = 0 if previous is None else backlog - previous
            if growth > 0 and busy:
                wanted = math.ceil((throughput + growth / window.seconds) / per_replica)
                return wanted, (
                    f"backlog grew by {growth} to {backlog} in {window.seconds:.0f}s with the "
                    f"replicas busy {window.busy:.0%}"
                )
            return None
        cpu = window.cpu_percent
        if busy and cpu is not None and cpu >= self.cpu_percent_target:
            return replicas + 1, (
                f"{backlog} waiting and none finished in {window.seconds:.0f}s, replicas busy "
                f"at CPU {cpu:.0f}%"
            )
        return None

    def _down(self, window: Window) -> tuple[int, str] | None:
        replicas, cpu, backlog = window.replicas, window.cpu_percent, window.backlog
        if window.busy >= BUSY:
            return None  # busy with little CPU: waiting on I/O, not idle
        if cpu is None:  # CPU unknown: only an idle consumer shrinks, to the minimum
            if not backlog and window.done == 0:
                return self.min_replicas, f"idle: nothing waiting or done in {window.seconds:.0f}s"
            return None
        if cpu >= self.cpu_percent_target:
            return None
        wanted = max(1, math.ceil(replicas * cpu / self.cpu_percent_target))
        reason = f"replicas' CPU {cpu:.0f}% is under the {self.cpu_percent_target:g}% target"
        if backlog:
            per_replica = window.throughput / replicas
            if per_replica == 0:
                return None  # events wait and none finished: stalled, not idle
            needed = math.ceil(backlog / self.backlog_burn_seconds / per_replica)
            if needed > wanted:
                wanted = needed
                reason += f", {needed} still burn the backlog of {backlog} in time"
        return (wanted, reason) if wanted < replicas else None

    def _steady(self, window: Window) -> str:
        cpu = "unknown" if window.cpu_percent is None else f"{window.cpu_percent:.0f}%"
        backlog = "unknown" if window.backlog is None else str(window.backlog)
        return f"steady: backlog {backlog}, {window.throughput:.1f} events/s, CPU {cpu}"


@dataclasses.dataclass(frozen=True)
class ReplicaPlan:
    """How many replicas a consumer starts with, and how it scales (None: fixed)."""

    start: int
    most: int  # the most it may run: each replica's TIDEFLOW_REPLICAS
    policy: Policy | None


def plan_replicas(options: Autoscaling, *, asked: int | None, cpus: int) -> ReplicaPlan:
    """``asked``: the start the consumer, ``--replicas`` or the flow named, else None."""
    low = options.min_replicas
    if not options.scales:
        start = asked or cpus
        high = options.max_replicas or max(start, low)
        start = min(high, max(low, start))
        return ReplicaPlan(start, start, None)
    high = options.max_replicas or max(cpus, low)
    policy = Policy(
        min_replicas=low,
        max_replicas=high,
        backlog_burn_seconds=options.backlog_burn_seconds,
        cpu_percent_target=options.cpu_percent_target,
    )
    start = min(high, max(low, asked or low))
    return ReplicaPlan(start, high, policy)


@dataclasses.dataclass(frozen=True)
class _Look:
    at: float
    done: int
    backlog: int | None
    samples: dict[str, ReplicaSample]


class Autoscaler(threading.Thread):
    """Applies ``policy`` to ``pool`` every ``frequency`` seconds until ``stop`` is set."""

    def __init__(
        self,
        pool: ReplicaPool,
        *,
        stats: Callable[[], SourceStats],
        policy: Policy,
        frequency: float,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"tideflow-autoscaler-{pool.name}", daemon=True)
        self.pool = pool
        self.stats = stats
        self.policy = policy
        self.frequency = frequency
        self._stop_event = stop
        self._said: set[str] = set()

    def run(self) -> None:
        last: _Look | None = None
        while not self._stop_event.wait(self.frequency):
            try:
                last = self.check(last)
            except Exception:  # a bad look must not end scaling, nor the run
                logger.exception("%s: autoscaling check failed", self.pool.name)
                last = None

    def check(self, last: _Look | None) -> _Look | None:
        """Look, and decide on the window since ``last``; this look, or None while
        replicas are starting or stopping (measuring starts again once they are not)."""
        if self.pool.changing():
            logger.debug("%s: replicas starting or stopping; not deciding", self.pool.name)
            return None
        look = self._look()
        if last is None:
            return look
        window = self._window(last, look)
        if window is None:
            return look
        decision = self.policy.decide(window)
        current = window.replicas
        if decision.replicas > current:
            added = self.pool.add(decision.replicas - current)
            logger.info(
                "%s: %d -> %d replicas (+%s): %s",
                self.pool.name,
                current,
                decision.replicas,
                ", ".join(added),
                decision.reason,
            )
            return None
        if decision.replicas < current:
            removed = self.pool.remove(current - decision.replicas)
            logger.info(
                "%s: %d -> %d replicas (-%s): %s",
                self.pool.name,
                current,
                decision.replicas,
                ", ".join(removed),
                decision.reason,
            )
            return None
        logger.debug("%s: staying at %d replicas: %s", self.pool.name, current, decision.reason)
        return look

    def _look(self) -> _Look:
        samples = {s.name: s for s in self.pool.samples()}
        done = self.pool.events_done()
        try:
            backlog = self.stats().pending
        except TideflowError as exc:
            logger.warning("%s: cannot read the backlog now: %s", self.pool.name, exc)
            backlog = None
        else:
            if backlog is None:
                self._say_once(
                    "backlog",
                    "%s: its source cannot tell its backlog; scaling on CPU and throughput only",
                )
        return _Look(time.monotonic(), done, backlog, samples)

    def _window(self, last: _Look, look: _Look) -> Window | None:
        kept = [
            (last.samples[name], sample)
            for name, sample in look.samples.items()
            if name in last.samples and last.samples[name].pid == sample.pid
        ]
        seconds = look.at - last.at
        if not kept or len(kept) != len(look.samples) or seconds <= 0:
            return None  # a replica restarted in between: measure again
        cpu_used = [
            b.cpu_seconds - a.cpu_seconds
            for a, b in kept
            if a.cpu_seconds is not None and b.cpu_seconds is not None
        ]
        cpu: float | None = None
        if len(cpu_used) == len(kept):
            cpu = 100 * sum(cpu_used) / seconds / len(kept)
        else:
            self._say_once(
                "cpu", "%s: replica CPU cannot be read here (no /proc); scaling down only when idle"
            )
        busy = sum(b.busy_seconds - a.busy_seconds for a, b in kept) / seconds / len(kept)
        return Window(
            seconds=seconds,
            replicas=len(kept),
            done=look.done - last.done,
            backlog=look.backlog,
            previous_backlog=last.backlog,
            cpu_percent=cpu,
            busy=min(1.0, busy),
        )

    def _say_once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            logger.info(message, self.pool.name)
