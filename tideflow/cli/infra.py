"""``tideflow plan``, ``apply`` and ``destroy``: the flow's primitives."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tideflow.cli.common import StackOption, YesOption, confirm, console, open_here, title
from tideflow.cli.progress import progress
from tideflow.cli.render import plan_tree
from tideflow.exceptions import ConfigError

if TYPE_CHECKING:
    from tideflow.io.primitive import PlanStep
    from tideflow.project import Project


def _carry_out(
    project: Project,
    steps: list[PlanStep],
    action: Callable[..., list[PlanStep]],
    *,
    yes: bool,
    question: str,
    label: str,
    nothing: str,
) -> list[PlanStep]:
    """Show the plan ``steps``; unless nothing changes (then say ``nothing``), ask, then do
    ``action`` with a progress bar; the steps done."""
    console.print(plan_tree(title(project), steps))
    if not any(step.changes for step in steps):
        console.print(nothing)
        return []
    confirm(question, yes)
    with progress(console) as bar:
        task = bar.add_task(label, total=len(project.flow.primitives()))
        return action(project.flow, on_step=lambda _: bar.advance(task))


def plan(stack: StackOption = None) -> None:
    """Show the primitives and what apply would do to each."""
    from tideflow import infra

    project = open_here(stack)
    console.print(plan_tree(title(project), infra.plan(project.flow)))


def apply(stack: StackOption = None, yes: YesOption = False) -> None:
    """Create the missing primitives (asks first)."""
    from tideflow import infra

    project = open_here(stack)
    nothing = "[green]No changes.[/] Everything is up to date."
    done = _carry_out(
        project,
        infra.plan(project.flow),
        infra.apply,
        yes=yes,
        question="Apply these changes?",
        label="Applying",
        nothing=nothing,
    )
    if done:
        changed = sum(step.changes for step in done)
        console.print(f"[green]Applied.[/] {changed} primitive(s) changed.")


def destroy(stack: StackOption = None, yes: YesOption = False) -> None:
    """Remove every primitive of the flow (asks first)."""
    from tideflow import infra

    project = open_here(stack)
    if project.is_running:
        raise ConfigError("`tideflow run` is running on this stack; stop it before destroy")
    done = _carry_out(
        project,
        infra.plan_destroy(project.flow),
        infra.destroy,
        yes=yes,
        question="Remove these primitives and their data?",
        label="Destroying",
        nothing="Nothing to remove.",
    )
    if done:
        removed = [s.primitive_id for s in done if s.changes]
        console.print(f"[red]Removed[/] {len(removed)} primitive(s): {', '.join(removed)}")
