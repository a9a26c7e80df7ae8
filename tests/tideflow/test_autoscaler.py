"""The autoscaler's policy: observations of one window in, a replica count and its reason out.

BuildFlow's own worked examples (its ``autoscaler.py`` docstring) are reproduced where the
rules are the same; where tideflow differs from BuildFlow (rounding down, issue 112), the
test says so.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tideflow import consumer
from tideflow.consumers import Autoscaling
from tideflow.exceptions import ConfigError
from tideflow.runtime.autoscaler import Policy, Window, plan_replicas
from tideflow.types.local import LocalFileChangeEvent

POLICY = Policy(min_replicas=1, max_replicas=10, backlog_burn_seconds=60, cpu_percent_target=25)
BUSY = Window(
    seconds=60, replicas=2, done=600, backlog=0, previous_backlog=0, cpu_percent=80, busy=1.0
)


def window(**changes: object) -> Window:
    return dataclasses.replace(BUSY, **changes)  # type: ignore[arg-type]


# --- up ----------------------------------------------------------------------------------


def test_a_backlog_too_long_to_burn_scales_to_what_burns_it_in_time() -> None:
    # BuildFlow's example 1: 2 replicas at 10 events/s, 1,000 waiting, 100 s to burn > 60 s:
    # 16.7 events/s wanted, 5 per replica -> 4 replicas.
    decision = POLICY.decide(window(done=600, backlog=1000, previous_backlog=1200))
    assert decision.replicas == 4
    assert decision.reason == (
        "backlog of 1000 would take 100s to burn at 10.0 events/s (threshold 60s)"
    )


def test_a_growing_backlog_with_busy_replicas_scales_to_absorb_the_growth() -> None:
    # BuildFlow's example 2: 4 replicas at 4,000 events/s, the backlog grew 50,000 -> 100,000
    # in a minute (25 s to burn: under the threshold): 4,833 events/s wanted -> 5 replicas.
    grown = window(replicas=4, done=240_000, backlog=100_000, previous_backlog=50_000)
    decision = POLICY.decide(grown)
    assert decision.replicas == 5
    assert decision.reason.startswith("backlog grew by 50000 to 100000 in 60s")
    # Growth while the replicas had time to spare is not a reason (arrivals jitter).
    assert POLICY.decide(dataclasses.replace(grown, busy=0.5)).replicas == 4
    # Nor from an empty backlog to one that burns in time, when they are not all busy.
    assert POLICY.decide(window(backlog=30, previous_backlog=0, busy=0.4)).replicas == 2


def test_events_waiting_and_none_finished_adds_one_when_the_replicas_work_hard() -> None:
    long_events = window(done=0, backlog=50, previous_backlog=50, cpu_percent=95)
    decision = POLICY.decide(long_events)
    assert decision.replicas == 3
    assert decision.reason == "50 waiting and none finished in 60s, replicas busy at CPU 95%"
    # The same with idle CPUs is a stall (a warehouse outage): neither up nor down.
    stalled = POLICY.decide(dataclasses.replace(long_events, cpu_percent=1))
    assert stalled.replicas == 2
    assert stalled.reason.startswith("steady")


def test_without_a_backlog_busy_replicas_get_one_more() -> None:
    # Pub/Sub without Cloud Monitoring: CPU and throughput only.
    decision = POLICY.decide(window(backlog=None, previous_backlog=None, busy=0.97))
    assert (decision.replicas, decision.reason) == (
        3,
        "backlog unknown, replicas busy 97% of 60s at 10.0 events/s",
    )
    assert POLICY.decide(window(backlog=None, busy=0.5, cpu_percent=40)).replicas == 2


def test_never_above_max_replicas_and_the_reason_says_so() -> None:
    decision = POLICY.decide(window(backlog=100_000))
    assert decision.replicas == 10
    assert decision.reason.endswith("; 334 wanted, max_replicas is 10")


# --- down --------------------------------------------------------------------------------


def test_low_cpu_scales_down_to_what_keeps_the_target() -> None:
    # 4 replicas at 10% CPU (40% of one core in all) for a 25% target: 1.6 replicas.
    # BuildFlow rounds down to 1 (over-downscaling, its issue 112); tideflow keeps 2.
    decision = POLICY.decide(window(replicas=4, cpu_percent=10, busy=0.2))
    assert decision.replicas == 2
    assert decision.reason == "replicas' CPU 10% is under the 25% target"


def test_idle_replicas_go_back_to_the_minimum() -> None:
    policy = dataclasses.replace(POLICY, min_replicas=2)
    decision = policy.decide(window(replicas=5, done=0, cpu_percent=0.3, busy=0.0))
    assert decision.replicas == 2
    assert decision.reason.endswith("; 1 wanted, min_replicas is 2")


def test_no_scale_down_while_fewer_replicas_could_not_burn_the_backlog_in_time() -> None:
    # 3 replicas at 5 events/s each, 30 waiting, a 2 s threshold: all 3 are still needed.
    burning = window(replicas=3, seconds=1, done=15, backlog=30, cpu_percent=2, busy=0.5)
    tight = dataclasses.replace(POLICY, backlog_burn_seconds=2)
    assert tight.decide(burning).replicas == 3
    # With room to spare, it goes down, but no further than what still burns it in time.
    decision = tight.decide(dataclasses.replace(burning, backlog=15))
    assert decision.replicas == 2
    assert decision.reason.endswith(", 2 still burn the backlog of 15 in time")


def test_replicas_busy_with_little_cpu_are_waiting_on_io_not_idle() -> None:
    assert POLICY.decide(window(cpu_percent=3, busy=0.95)).replicas == 2


def test_where_cpu_cannot_be_read_only_an_idle_consumer_shrinks() -> None:
    idle = window(replicas=3, done=0, backlog=0, cpu_percent=None, busy=0.0)
    assert POLICY.decide(idle).replicas == 1
    assert POLICY.decide(idle).reason == "idle: nothing waiting or done in 60s"
    assert POLICY.decide(dataclasses.replace(idle, done=5)).replicas == 3


def test_steady_names_what_it_saw() -> None:
    decision = POLICY.decide(window(cpu_percent=40, busy=0.6))
    assert decision.replicas == 2
    assert decision.reason == "steady: backlog 0, 10.0 events/s, CPU 40%"


# --- how a consumer's options become a replica range -------------------------------------


def test_nothing_set_keeps_todays_fixed_replicas() -> None:
    plan = plan_replicas(Autoscaling(), asked=None, cpus=8)
    assert (plan.start, plan.most, plan.policy) == (8, 8, None)
    assert plan_replicas(Autoscaling(), asked=3, cpus=8).start == 3


def test_max_above_min_autoscales_from_the_minimum() -> None:
    plan = plan_replicas(Autoscaling(max_replicas=4), asked=None, cpus=2)
    assert (plan.start, plan.most) == (1, 4)  # asked explicitly: above the CPU count
    assert plan.policy == Policy(1, 4, 60.0, 25.0)
    assert plan_replicas(Autoscaling(max_replicas=4), asked=9, cpus=2).start == 4


def test_enable_autoscaler_alone_scales_up_to_the_cpu_count() -> None:
    plan = plan_replicas(Autoscaling(enabled=True), asked=None, cpus=6)
    assert plan.policy is not None and plan.policy.max_replicas == 6
    off = plan_replicas(Autoscaling(enabled=False, max_replicas=4), asked=None, cpus=2)
    assert (off.start, off.policy) == (2, None)


def _count(file_event: LocalFileChangeEvent) -> None:
    return None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_replicas": 3, "max_replicas": 2}, "max_replicas must be from min_replicas (3)"),
        ({"min_replicas": 0}, "min_replicas must be from 1 to 256, got 0"),
        ({"num_replicas": 5, "max_replicas": 4}, "num_replicas (5) must be between"),
        ({"consumer_cpu_percent_target": 0}, "consumer_cpu_percent_target must be above 0"),
        ({"autoscale_frequency_secs": -1}, "autoscale_frequency_secs must be above 0"),
        ({"consumer_backlog_burn_threshold": 0}, "consumer_backlog_burn_threshold must be"),
    ],
)
def test_bad_options_are_one_line_naming_the_consumer(
    options: dict[str, float], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tideflow.io.duckdb import DuckDBDataset, DuckDBTable
    from tideflow.io.local import LocalBucket, LocalFileChangeStream

    monkeypatch.setenv("TIDEFLOW_HOME", str(tmp_path))
    stream = LocalFileChangeStream(LocalBucket("files"))
    table = DuckDBTable(DuckDBDataset("w.duckdb"), "t")
    with pytest.raises(ConfigError, match=r"^consumer _count: ") as raised:
        consumer(stream, table, **options)(_count)  # type: ignore[arg-type]
    assert message in str(raised.value) and "\n" not in str(raised.value)
