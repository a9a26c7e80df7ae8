"""``tideflow plan``, ``apply`` and ``destroy``: the flow's primitives."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from tideflow import infra
from tideflow.cli.common import StackOption, YesOption, confirm, console, open_here, title
from tideflow.cli.progress import progress
from tideflow.cli.render import plan_tree
from tideflow.exceptions import ConfigError

if TYPE_CHECKING:
    from tideflow.flow import Flow
    from tideflow.io.primitive import PlanStep
    from tideflow.project import Project


@dataclasses.dataclass(frozen=True)
class _Change:
    """A change to every primitive: how it is planned and done, and what is said."""

    plan: Callable[[Flow], list[PlanStep]]
    action: Callable[..., list[PlanStep]]
    question: str
    doing: str
    nothing: str

    def carry_out(self, project: Project, *, yes: bool) -> list[PlanStep]:
        """Show the plan; unless nothing changes, ask, then act with a progress bar; the
        steps done (none when nothing changed)."""
        steps = self.plan(project.flow)
        console.print(plan_tree(title(project), steps))
        if not any(step.changes for step in steps):
            console.print(self.nothing)
            return []
        confirm(self.question, yes)
        with progress(console) as bar:
            task = bar.add_task(self.doing, total=len(steps))
            return self.action(project.flow, on_step=lambda _: bar.advance(task))


_APPLY = _Change(
    infra.plan,
    infra.apply,
    "Apply these changes?",
    "Applying",
    "[green]No changes.[/] Everything is up to date.",
)
_DESTROY = _Change(
    infra.plan_destroy,
    infra.destroy,
    "Remove these primitives and their data?",
    "Destroying",
    "Nothing to remove.",
)


def plan(stack: StackOption = None) -> None:
    """Show the primitives and what apply would do to each."""
    project = open_here(stack)
    console.print(plan_tree(title(project), infra.plan(project.flow)))


def apply(stack: StackOption = None, yes: YesOption = False) -> None:
    """Create the missing primitives (asks first)."""
    done = _APPLY.carry_out(open_here(stack), yes=yes)
    if done:
        changed = sum(step.changes for step in done)
        console.print(f"[green]Applied.[/] {changed} primitive(s) changed.")


def destroy(stack: StackOption = None, yes: YesOption = False) -> None:
    """Remove every primitive of the flow (asks first)."""
    project = open_here(stack)
    if project.is_running:
        raise ConfigError("`tideflow run` is running on this stack; stop it before destroy")
    done = _DESTROY.carry_out(project, yes=yes)
    if done:
        removed = [s.primitive_id for s in done if s.changes]
        console.print(f"[red]Removed[/] {len(removed)} primitive(s): {', '.join(removed)}")
