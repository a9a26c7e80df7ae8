"""``@consumer``: a function that turns each event of a source into rows of a sink."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from tideflow.dependencies import check_scopes, get_dependant
from tideflow.exceptions import ConfigError
from tideflow.io.primitive import SinkPrimitive, SourcePrimitive


@dataclasses.dataclass(eq=False)
class Consumer:
    """A processor: ``function(event, **dependencies) -> row | list[row] | None``."""

    function: Callable[..., Any]
    source: SourcePrimitive
    sink: SinkPrimitive
    num_replicas: int | None = None
    batch_size: int = 8

    def __post_init__(self) -> None:
        functools.update_wrapper(self, self.function)
        dependant = get_dependant(self.function)
        if len(dependant.other_params) != 1:
            raise ConfigError(
                f"consumer {self.name} must take exactly one event parameter besides its "
                f"dependencies; it takes {[p.name for p in dependant.other_params]}"
            )
        for spec in dependant.dependencies.values():
            check_scopes(spec)
        self.event_param = dependant.other_params[0].name

    @property
    def name(self) -> str:
        return self.function.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)


def consumer(
    *,
    source: SourcePrimitive,
    sink: SinkPrimitive,
    num_replicas: int | None = None,
    batch_size: int = 8,
) -> Callable[[Callable[..., Any]], Consumer]:
    """Declare a consumer reading ``source`` and writing to ``sink``.

    ``num_replicas`` defaults to the run's ``--replicas`` or the CPU count; each replica
    is an OS process with its own REPLICA-scoped dependencies. Up to ``batch_size``
    events are handed to a replica at once and their rows written in one transaction.
    """
    if not isinstance(source, SourcePrimitive):
        raise ConfigError(f"consumer source must be a stream primitive, got {source!r}")
    if not isinstance(sink, SinkPrimitive):
        raise ConfigError(f"consumer sink must be a table primitive, got {sink!r}")

    def wrap(function: Callable[..., Any]) -> Consumer:
        return Consumer(function, source, sink, num_replicas=num_replicas, batch_size=batch_size)

    return wrap
