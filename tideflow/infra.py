"""Plan, apply and destroy a flow's primitives, in dependency order."""

from __future__ import annotations

from collections.abc import Callable
from operator import methodcaller
from typing import TYPE_CHECKING

from tideflow.exceptions import PrimitiveError, TideflowError
from tideflow.io.primitive import PlanStep, Primitive

if TYPE_CHECKING:
    from tideflow.flow import Flow

OnStep = Callable[[PlanStep], None] | None


def _each(
    primitives: list[Primitive],
    action: Callable[[Primitive], PlanStep],
    on_step: OnStep,
) -> list[PlanStep]:
    steps = []
    for primitive in primitives:
        try:
            steps.append(action(primitive))
        except TideflowError:
            raise
        except Exception as exc:
            raise PrimitiveError(
                f"{primitive.primitive_id()}: {type(exc).__name__}: {exc}"
            ) from exc
        if on_step is not None:
            on_step(steps[-1])
    return steps


def plan(flow: Flow, *, on_step: OnStep = None) -> list[PlanStep]:
    return _each(flow.primitives(), methodcaller("plan"), on_step)


def apply(flow: Flow, *, on_step: OnStep = None) -> list[PlanStep]:
    """Create what is missing; a second call changes nothing."""
    return _each(flow.primitives(), methodcaller("apply"), on_step)


def plan_destroy(flow: Flow, *, on_step: OnStep = None) -> list[PlanStep]:
    return _each(flow.primitives()[::-1], methodcaller("plan_destroy"), on_step)


def destroy(flow: Flow, *, on_step: OnStep = None) -> list[PlanStep]:
    """Remove everything, dependants first."""
    return _each(flow.primitives()[::-1], methodcaller("destroy"), on_step)
