"""Declarative primitives: what exists, and how to plan, create and remove it."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Self

from tideflow.io.strategies import Sink, Source, TableReader


class PlanAction(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    NO_CHANGE = "no change"
    DELETE = "delete"


@dataclasses.dataclass(frozen=True)
class PlanStep:
    """What applying (or destroying) one primitive does, with its sub-resources."""

    primitive_id: str
    kind: str
    action: PlanAction
    detail: str = ""
    children: tuple[PlanStep, ...] = ()

    @property
    def changes(self) -> bool:
        return self.action is not PlanAction.NO_CHANGE or any(c.changes for c in self.children)


class Primitive:
    """A resource a flow manages: a bucket, a stream, a dataset, a table.

    Subclasses implement ``primitive_id``, ``plan``, ``apply`` and ``destroy``;
    ``apply`` and ``destroy`` are idempotent and return what they did.
    """

    def primitive_id(self) -> str:
        raise NotImplementedError(f"{type(self).__name__} must implement primitive_id()")

    def plan(self) -> PlanStep:
        """What ``apply`` would do, read from what exists now."""
        raise NotImplementedError(f"{type(self).__name__} must implement plan()")

    def plan_destroy(self) -> PlanStep:
        """What ``destroy`` would do, read from what exists now."""
        raise NotImplementedError(f"{type(self).__name__} must implement plan_destroy()")

    def apply(self) -> PlanStep:
        raise NotImplementedError(f"{type(self).__name__} must implement apply()")

    def destroy(self) -> PlanStep:
        raise NotImplementedError(f"{type(self).__name__} must implement destroy()")

    def depends_on(self) -> tuple[Primitive, ...]:
        """Primitives that must exist before this one (apply order)."""
        return ()

    def options(self, **settings: Any) -> Self:
        """Set options after construction, BuildFlow style: ``Table(...).options(schema=Row)``."""
        for name, value in settings.items():
            if name not in self._option_names():
                known = ", ".join(sorted(self._option_names())) or "none"
                raise TypeError(
                    f"{type(self).__name__}.options() got an unknown option {name!r} "
                    f"(known: {known})"
                )
            setattr(self, name, value)
        return self

    def _option_names(self) -> frozenset[str]:
        return frozenset()

    def step(self, action: PlanAction, detail: str = "", *children: PlanStep) -> PlanStep:
        return PlanStep(self.primitive_id(), type(self).__name__, action, detail, children)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.primitive_id()!r})"


class SourcePrimitive(Primitive):
    """A primitive consumers read events from."""

    def source(self) -> Source:
        raise NotImplementedError(f"{type(self).__name__} must implement source()")


class SinkPrimitive(Primitive):
    """A primitive consumers write rows to, and the service reads back."""

    def sink(self) -> Sink:
        raise NotImplementedError(f"{type(self).__name__} must implement sink()")

    def reader(self) -> TableReader:
        raise NotImplementedError(f"{type(self).__name__} must implement reader()")
