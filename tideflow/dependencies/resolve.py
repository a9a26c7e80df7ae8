"""Algorithms of the dependency system: analyse a callable once, build it per scope.

Lifecycles (a generator dependency is set up at its ``yield`` and its ``finally`` runs
when its scope ends):

- per call (``NO_SCOPE``): built at most once per call, cleaned up after the call;
- ``REPLICA``: cleaned up by ``Resolver.close()`` when the replica stops;
- ``PROCESS``: cleaned up by ``close_process_scope()`` when the process shuts down
  (``Resolver.shutdown()`` calls it; an ``atexit`` hook is the fallback);
- ``GLOBAL``: cleaned up by ``Resolver.shutdown()`` of the resolver that built it (the
  run process's), after the narrower scopes.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import inspect
import logging
import threading
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

from tideflow.dependencies.models import DependencySpec, Provider, Scope, spec_of
from tideflow.exceptions import DependencyError, DependencyScopeError

logger = logging.getLogger("tideflow.dependencies")


@dataclasses.dataclass(frozen=True)
class Dependant:
    """A callable and what its parameters ask for, by parameter name.

    ``dependencies``: parameters tideflow builds; ``request_params``: parameters
    annotated with ``Request`` (filled with the HTTP request of the call);
    ``other_params``: everything else.
    """

    call: Callable[..., Any]
    dependencies: dict[str, DependencySpec]
    other_params: tuple[inspect.Parameter, ...]
    request_params: tuple[str, ...] = ()


def _dependency_in(annotation: Any) -> DependencySpec | None:
    spec = spec_of(annotation)
    if spec is not None:
        return spec
    if typing.get_origin(annotation) is Annotated:
        for extra in annotation.__metadata__:
            # ``Annotated[Proto, BucketDependencyBuilder(b)]``: the builder's own
            # ``Annotated[Proto, provider]`` sits in the metadata.
            spec = _dependency_in(extra)
            if spec is not None:
                return spec
    return None


def _is_request(annotation: Any) -> bool:
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return inspect.isclass(annotation) and issubclass(annotation, HTTPConnection)


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
    requests: list[str] = []
    others: list[inspect.Parameter] = []
    for name, param in signature.parameters.items():
        annotation = hints.get(name, param.annotation)
        spec = _dependency_in(annotation)
        if spec is not None:
            dependencies[name] = spec
        elif _is_request(annotation):
            requests.append(name)
        else:
            others.append(param)
    return Dependant(
        call=call,
        dependencies=dependencies,
        other_params=tuple(others),
        request_params=tuple(requests),
    )


def check_scopes(spec: DependencySpec, _path: tuple[str, ...] = ()) -> None:
    """Fail if ``spec`` or anything below it depends on a narrower scope, or on itself.

    A dependency that takes the ``Request`` lives for one call, so it must be NO_SCOPE.
    """
    path = (*_path, spec.name)
    dependant = get_dependant(spec.provider)
    if dependant.other_params:
        names = ", ".join(p.name for p in dependant.other_params if p.default is p.empty)
        if names:
            raise DependencyError(
                f"dependency {spec.name} has parameters tideflow cannot fill: {names} "
                "(annotate them with other dependencies, with Request, or give them defaults)"
            )
    if dependant.request_params and spec.scope is not Scope.NO_SCOPE:
        raise DependencyScopeError(
            f"dependency {spec.name} (scope {spec.scope.name}) takes the Request, which "
            "lives for one call; declare it with @dependency(scope=Scope.NO_SCOPE)"
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


def takes_request(spec: DependencySpec) -> bool:
    """Whether ``spec`` or anything below it needs the HTTP request of the call."""
    dependant = get_dependant(spec.provider)
    return bool(dependant.request_params) or any(
        takes_request(child) for child in dependant.dependencies.values()
    )


class Call:
    """One call (an event, an HTTP request): its per-call values, cleanups and request.

    A dependency asked for twice in one call (by the function and by another
    dependency) is built once; generator dependencies are cleaned up when ``stack``
    closes, after the call.
    """

    def __init__(
        self, stack: contextlib.ExitStack | None = None, *, request: HTTPConnection | None = None
    ) -> None:
        self.stack = stack if stack is not None else contextlib.ExitStack()
        self.request = request
        self.values: dict[Provider, Any] = {}


_process_values: dict[Provider, Any] = {}
_process_exit_stack = contextlib.ExitStack()
_process_lock = threading.RLock()


def _close(stack: contextlib.ExitStack, what: str) -> None:
    try:
        stack.close()
    except Exception:
        # A failing cleanup must not keep the others from running, nor stop a shutdown.
        logger.exception("cleaning up %s dependencies failed", what)


def close_process_scope() -> None:
    """Clean up this process's PROCESS values (generators run their ``finally``)."""
    with _process_lock:
        _process_values.clear()
        _close(_process_exit_stack, "PROCESS")


atexit.register(close_process_scope)


class Resolver:
    """Builds dependencies and caches them by scope.

    One resolver serves one replica (a consumer replica or the HTTP service). PROCESS
    values are shared by every resolver in the process; GLOBAL values are built by the
    run process's resolver and seeded into replica resolvers through ``global_values``.

    ``overrides`` is FastAPI's ``dependency_overrides``: a provider found there as a key
    is replaced by its value, with the same scope, wherever it is asked for. The mapping
    is read at each resolution, so changes to it apply to later calls. Scoped values are
    cached by the provider that built them: two resolvers that override a dependency
    differently get a value each, but a PROCESS dependency that depends on it is built
    once per process, with the overrides of the resolver that built it first.
    """

    def __init__(
        self,
        *,
        global_values: dict[Provider, Any] | None = None,
        overrides: Mapping[Provider, Provider] | None = None,
    ) -> None:
        self._overrides: Mapping[Provider, Provider] = overrides if overrides is not None else {}
        self._globals: dict[Provider, Any] = dict(global_values or {})
        self._global_exit_stack = contextlib.ExitStack()
        self._replica: dict[Provider, Any] = {}
        self._replica_exit_stack = contextlib.ExitStack()
        self._lock = threading.RLock()

    @property
    def global_values(self) -> dict[Provider, Any]:
        return dict(self._globals)

    @contextlib.contextmanager
    def call(self, *, request: HTTPConnection | None = None) -> Iterator[Call]:
        """A call scope: ``with resolver.call() as call: kwargs = resolver.solve(d, call)``."""
        with contextlib.ExitStack() as stack:
            yield Call(stack, request=request)

    def resolve(self, spec: DependencySpec, call: Call | contextlib.ExitStack) -> Any:
        """The value of ``spec`` (or of its override) for ``call`` (an ExitStack is taken
        as a new call)."""
        if not isinstance(call, Call):
            call = Call(call)
        spec = self.effective(spec)
        if spec.scope is Scope.NO_SCOPE:
            if spec.provider not in call.values:
                call.values[spec.provider] = self._build(spec, call, call.stack)
            return call.values[spec.provider]
        cache, stack, lock = self._cache_for(spec.scope)
        with lock:
            if spec.provider not in cache:
                cache[spec.provider] = self._build(spec, call, stack)
            return cache[spec.provider]

    def solve(self, dependant: Dependant, call: Call | contextlib.ExitStack) -> dict[str, Any]:
        """Keyword arguments for ``dependant``'s dependency (and Request) parameters."""
        if not isinstance(call, Call):
            call = Call(call)
        values = {name: self.resolve(spec, call) for name, spec in dependant.dependencies.items()}
        if dependant.request_params:
            if call.request is None:
                raise DependencyError(
                    f"{getattr(dependant.call, '__qualname__', dependant.call)} takes the "
                    "Request, but this call has none (only endpoint calls do)"
                )
            values.update(dict.fromkeys(dependant.request_params, call.request))
        return values

    def warm_up(self, call: Callable[..., Any], *, scopes: set[Scope]) -> None:
        """Build now every dependency of ``call`` (transitively) whose scope is in ``scopes``."""
        for spec in get_dependant(call).dependencies.values():
            spec = self.effective(spec)
            check_scopes(spec)
            if spec.scope in scopes:
                self.resolve(spec, Call(self._replica_exit_stack))
            self.warm_up(spec.provider, scopes=scopes)

    def effective(self, spec: DependencySpec) -> DependencySpec:
        """``spec``, or its override in ``spec``'s scope."""
        override = self._overrides.get(spec.provider)
        return spec if override is None else DependencySpec(provider=override, scope=spec.scope)

    def close(self) -> None:
        """Clean up REPLICA values (generator dependencies run their ``finally``)."""
        with self._lock:
            self._replica.clear()
            _close(self._replica_exit_stack, "REPLICA")

    def shutdown(self) -> None:
        """Clean up everything this resolver and its process built, narrowest scope first:
        REPLICA, then PROCESS, then the GLOBAL values this resolver built."""
        self.close()
        close_process_scope()
        with self._lock:
            _close(self._global_exit_stack, "GLOBAL")

    def _cache_for(
        self, scope: Scope
    ) -> tuple[dict[Provider, Any], contextlib.ExitStack, threading.RLock]:
        if scope is Scope.REPLICA:
            return self._replica, self._replica_exit_stack, self._lock
        if scope is Scope.PROCESS:
            return _process_values, _process_exit_stack, _process_lock
        return self._globals, self._global_exit_stack, self._lock

    def _build(self, spec: DependencySpec, call: Call, stack: contextlib.ExitStack) -> Any:
        dependant = get_dependant(spec.provider)
        # A scoped value is built with a call of its own: it must not keep per-call values.
        inner = call if spec.scope is Scope.NO_SCOPE else Call(stack, request=call.request)
        kwargs = self.solve(dependant, inner)
        try:
            if inspect.isgeneratorfunction(spec.provider):
                return stack.enter_context(contextlib.contextmanager(spec.provider)(**kwargs))
            return spec.provider(**kwargs)
        except (DependencyError, HTTPException):
            raise  # an HTTPException is the dependency's answer to the request (e.g. 401)
        except Exception as exc:
            raise DependencyError(f"building dependency {spec.name} failed: {exc}") from exc
