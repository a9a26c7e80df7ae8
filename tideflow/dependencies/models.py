"""Data of the dependency system: scopes and the marker ``@dependency`` leaves."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any, TypeVar

Provider = Callable[..., Any]
P = TypeVar("P", bound=Provider)

MARKER = "__tideflow_dependency__"


class Scope(enum.IntEnum):
    """How long a built dependency lives, from the narrowest to the widest.

    - ``NO_SCOPE``: built for every call (each event, each HTTP request) and cleaned
      up right after it.
    - ``REPLICA``: built once per replica, before the replica takes its first event
      (a consumer replica process, or the HTTP service); rebuilt when a replica restarts.
      Use it for models and other heavy state.
    - ``PROCESS``: built once per OS process and shared by everything in it.
    - ``GLOBAL``: built once per flow run, in the run process, and handed to every
      replica process by pickling (so its value must be picklable). Use it for small
      shared configuration computed once.

    A dependency may only depend on dependencies of its own scope or a wider one:
    a GLOBAL value cannot hold a per-call one.
    """

    NO_SCOPE = 0
    REPLICA = 1
    PROCESS = 2
    GLOBAL = 3


@dataclasses.dataclass(frozen=True)
class DependencySpec:
    provider: Provider
    scope: Scope

    @property
    def name(self) -> str:
        return getattr(self.provider, "__qualname__", repr(self.provider))


def dependency(*, scope: Scope = Scope.PROCESS) -> Callable[[P], P]:
    """Mark a class or a function as an injectable dependency.

    Parameters annotated with the marked class (``model: ModelDep``), or with
    ``Annotated[T, provider]``, are built and passed in by tideflow, in consumers,
    endpoints and other dependencies. A generator function is set up at its ``yield``
    and cleaned up when its scope ends. A ``NO_SCOPE`` dependency used by endpoints may
    take the ``Request`` (e.g. to check a token and raise ``HTTPException(401)``).
    """

    def mark(provider: P) -> P:
        setattr(provider, MARKER, DependencySpec(provider=provider, scope=scope))
        return provider

    return mark


def spec_of(candidate: object) -> DependencySpec | None:
    spec = getattr(candidate, MARKER, None)
    # A subclass of a dependency class inherits the marker but is not the same dependency.
    if isinstance(spec, DependencySpec) and spec.provider is candidate:
        return spec
    return None
