"""Algorithms of the dependency system: analyse a callable once, build it per scope."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import threading
import typing
from collections.abc import Callable
from typing import Annotated, Any

from tideflow.dependencies.models import DependencySpec, Provider, Scope, spec_of
from tideflow.exceptions import DependencyError, DependencyScopeError


@dataclasses.dataclass(frozen=True)
class Dependant:
    """A callable and the dependencies its parameters ask for (by parameter name)."""

    call: Callable[..., Any]
    dependencies: dict[str, DependencySpec]
    other_params: tuple[inspect.Parameter, ...]


def _dependency_in(annotation: Any) -> DependencySpec | None:
    spec = spec_of(annotation)
    if spec is not None:
        return spec
    if typing.get_origin(annotation) is Annotated:
        for extra in annotation.__metadata__:
            spec = spec_of(extra)
            if spec is not None:
                return spec
    return None


@functools.cache
def get_dependant(call: Callable[..., Any]) -> Dependant:
    """Analyse ``call``'s signature; classes are analysed through ``__init__``."""
    target = call.__init__ if inspect.isclass(call) else call
    try:
        hints = typing.get_type_hints(target, include_extras=True)
        signature = inspect.signature(call)
    except (NameError, TypeError) as exc:
        raise DependencyError(f"cannot read the annotations of {call!r}: {exc}") from exc
    dependencies: dict[str, DependencySpec] = {}
    others: list[inspect.Parameter] = []
    for name, param in signature.parameters.items():
        spec = _dependency_in(hints.get(name, param.annotation))
        if spec is None:
            others.append(param)
        else:
            dependencies[name] = spec
    return Dependant(call=call, dependencies=dependencies, other_params=tuple(others))


def check_scopes(spec: DependencySpec, _path: tuple[str, ...] = ()) -> None:
    """Fail if ``spec`` or anything below it depends on a narrower scope, or on itself."""
    path = (*_path, spec.name)
    dependant = get_dependant(spec.provider)
    if dependant.other_params:
        names = ", ".join(p.name for p in dependant.other_params if p.default is p.empty)
        if names:
            raise DependencyError(
                f"dependency {spec.name} has parameters tideflow cannot fill: {names} "
                "(annotate them with other dependencies or give them defaults)"
            )
    for child in dependant.dependencies.values():
        if child.name in path:
            raise DependencyError(f"dependency cycle: {' -> '.join((*path, child.name))}")
        if child.scope < spec.scope:
            raise DependencyScopeError(
                f"dependency {spec.name} (scope {spec.scope.name}) depends on {child.name} "
                f"(scope {child.scope.name}), which lives in a narrower scope; widen "
                f"{child.name}'s scope or narrow {spec.name}'s"
            )
        check_scopes(child, path)


_process_values: dict[Provider, Any] = {}
_process_exit_stack = contextlib.ExitStack()
_process_lock = threading.RLock()


class Resolver:
    """Builds dependencies and caches them by scope.

    One resolver serves one replica (a consumer replica or the HTTP service). PROCESS
    values are shared by every resolver in the process; GLOBAL values are seeded by the
    run process through ``global_values``.
    """

    def __init__(self, *, global_values: dict[Provider, Any] | None = None) -> None:
        self._globals: dict[Provider, Any] = dict(global_values or {})
        self._replica: dict[Provider, Any] = {}
        self._replica_exit_stack = contextlib.ExitStack()
        self._lock = threading.RLock()

    @property
    def global_values(self) -> dict[Provider, Any]:
        return dict(self._globals)

    def resolve(self, spec: DependencySpec, call_stack: contextlib.ExitStack) -> Any:
        """The value of ``spec``; per-call cleanups go on ``call_stack``."""
        if spec.scope is Scope.NO_SCOPE:
            return self._build(spec, call_stack)
        cache, stack, lock = self._cache_for(spec.scope)
        with lock:
            if spec.provider not in cache:
                cache[spec.provider] = self._build(spec, stack)
            return cache[spec.provider]

    def solve(self, dependant: Dependant, call_stack: contextlib.ExitStack) -> dict[str, Any]:
        """Keyword arguments for ``dependant``'s dependency parameters."""
        return {
            name: self.resolve(spec, call_stack) for name, spec in dependant.dependencies.items()
        }

    def warm_up(self, call: Callable[..., Any], *, scopes: set[Scope]) -> None:
        """Build now every dependency of ``call`` (transitively) whose scope is in ``scopes``."""
        for spec in get_dependant(call).dependencies.values():
            check_scopes(spec)
            if spec.scope in scopes:
                self.resolve(spec, self._replica_exit_stack)
            self.warm_up(spec.provider, scopes=scopes)

    def close(self) -> None:
        """Clean up REPLICA values (generator dependencies run their ``finally``)."""
        with self._lock:
            self._replica.clear()
            self._replica_exit_stack.close()

    def _cache_for(
        self, scope: Scope
    ) -> tuple[dict[Provider, Any], contextlib.ExitStack, threading.RLock]:
        if scope is Scope.REPLICA:
            return self._replica, self._replica_exit_stack, self._lock
        if scope is Scope.PROCESS:
            return _process_values, _process_exit_stack, _process_lock
        return self._globals, _process_exit_stack, self._lock

    def _build(self, spec: DependencySpec, stack: contextlib.ExitStack) -> Any:
        dependant = get_dependant(spec.provider)
        kwargs = self.solve(dependant, stack)
        try:
            if inspect.isgeneratorfunction(spec.provider):
                return stack.enter_context(contextlib.contextmanager(spec.provider)(**kwargs))
            return spec.provider(**kwargs)
        except DependencyError:
            raise
        except Exception as exc:
            raise DependencyError(f"building dependency {spec.name} failed: {exc}") from exc
