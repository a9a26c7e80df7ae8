"""Primitives made of parts, each planned, applied and removed on its own.

A file-change stream is several cloud resources: a topic, subscriptions, IAM grants and a
bucket notification on gcp; two queues and a bucket notification entry on aws. A
``Part`` is one of them: ``plan`` reads what exists, ``apply`` creates or updates it,
``plan_destroy`` and ``delete`` remove it. ``CompositePrimitive`` plans, applies and
destroys the whole from its ``parts()``, so a provider writes only its parts' own calls:

- ``plan`` asks every part; the primitive's action is "no change" or "create" when every
  part says so, else "update";
- ``apply`` plans each part just before it applies it (a later part needs the earlier
  ones: a subscription its topic, a notification its queue's policy);
- ``destroy`` removes the removable parts in reverse order (an IAM grant goes with its
  resource).

Parts are written so that creating something that appeared meanwhile, or deleting
something already gone, is not an error: concurrent applies and destroys settle.
"""

from __future__ import annotations

from collections.abc import Sequence

from tideflow.io.primitive import PlanAction, PlanStep, Primitive


class Part:
    """One resource inside a composite primitive."""

    kind = ""
    name = ""  # the part's id in a plan
    removable = True  # False: removed with another part (an IAM grant with its resource)

    def step(self, action: PlanAction, detail: str = "") -> PlanStep:
        return PlanStep(self.name, self.kind, action, detail)

    def plan(self) -> PlanStep:
        raise NotImplementedError(f"{type(self).__name__} must implement plan()")

    def apply(self, action: PlanAction) -> None:
        """Make the change ``plan`` found (``CREATE`` or ``UPDATE``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement apply()")

    def plan_destroy(self) -> PlanStep:
        raise NotImplementedError(f"{type(self).__name__} must implement plan_destroy()")

    def delete(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement delete()")


class CompositePrimitive(Primitive):
    """A primitive whose plan, apply and destroy are those of its ``parts()``."""

    def parts(self) -> Sequence[Part]:
        """The parts, in apply order."""
        raise NotImplementedError(f"{type(self).__name__} must implement parts()")

    def plan_detail(self) -> str:
        """What the primitive's own plan line says besides its parts."""
        return ""

    def plan(self) -> PlanStep:
        self.check_options()
        return self._summary([part.plan() for part in self.parts()])

    def apply(self) -> PlanStep:
        self.check_options()
        children = []
        for part in self.parts():
            step = part.plan()
            if step.action is not PlanAction.NO_CHANGE:
                part.apply(step.action)
            children.append(step)
        return self._summary(children)

    def plan_destroy(self) -> PlanStep:
        return self._removal([part.plan_destroy() for part in self._removable()])

    def destroy(self) -> PlanStep:
        children = []
        for part in self._removable():
            step = part.plan_destroy()
            if step.action is PlanAction.DELETE:
                part.delete()
            children.append(step)
        return self._removal(children)

    def _removable(self) -> list[Part]:
        return [part for part in reversed(self.parts()) if part.removable]

    def _summary(self, children: list[PlanStep]) -> PlanStep:
        return self.step(PlanAction.of_parts(children), self.plan_detail(), *children)

    def _removal(self, children: list[PlanStep]) -> PlanStep:
        gone = all(child.action is PlanAction.NO_CHANGE for child in children)
        action = PlanAction.NO_CHANGE if gone else PlanAction.DELETE
        return self.step(action, "already gone" if gone else "", *children)
