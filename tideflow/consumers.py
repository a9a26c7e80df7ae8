"""``@consumer``: a function that turns each event of a source into rows of a sink."""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Callable
from typing import Any

from tideflow.dependencies import check_scopes, get_dependant, takes_request
from tideflow.exceptions import ConfigError, DependencyError
from tideflow.io.primitive import SinkPrimitive, SourcePrimitive


@dataclasses.dataclass(eq=False)
class Consumer:
    """A processor: ``function(event, **dependencies) -> row | list[row] | None``."""

    function: Callable[..., Any]
    source: SourcePrimitive
    sink: SinkPrimitive
    num_replicas: int | None = None
    batch_size: int = 8
    num_concurrency: int = 1

    def __post_init__(self) -> None:
        functools.update_wrapper(self, self.function)
        if self.num_concurrency < 1:
            raise ConfigError(
                f"consumer {self.name}: num_concurrency must be at least 1, "
                f"got {self.num_concurrency}"
            )
        dependant = get_dependant(self.function)
        if len(dependant.other_params) != 1:
            raise ConfigError(
                f"consumer {self.name} must take exactly one event parameter besides its "
                f"dependencies; it takes {[p.name for p in dependant.other_params]}"
            )
        for spec in dependant.dependencies.values():
            check_scopes(spec)
            if takes_request(spec):
                raise DependencyError(
                    f"consumer {self.name} asks for {spec.name}, which takes the HTTP "
                    "Request; only endpoints have one"
                )
        self.event_param = dependant.other_params[0].name
        self._infer_sink_schema()

    def _infer_sink_schema(self) -> None:
        """BuildFlow's rule: a table without ``.options(schema=...)`` takes the row type the
        function returns (``-> Row`` or ``-> list[Row]``, Row a dataclass)."""
        if "schema" not in self.sink._option_names() or getattr(self.sink, "schema", 1) is not None:
            return
        try:
            returned = typing.get_type_hints(self.function).get("return")
        except (NameError, TypeError):
            return
        if typing.get_origin(returned) is list:  # also typing.List[Row]
            (returned,) = typing.get_args(returned) or (None,)
        if isinstance(returned, type) and dataclasses.is_dataclass(returned):
            self.sink.options(schema=returned)

    @property
    def name(self) -> str:
        return self.function.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)


# BuildFlow's Ray and autoscaler knobs: accepted so BuildFlow apps run, without effect
# (tideflow runs a fixed number of replica processes and has no autoscaler).
RAY_CONSUMER_OPTIONS = frozenset(
    {
        "num_cpus",
        "enable_autoscaler",
        "min_replicas",
        "max_replicas",
        "autoscale_frequency_secs",
        "consumer_backlog_burn_threshold",
        "consumer_cpu_percent_target",
        "log_level",
    }
)


def consumer(
    source: SourcePrimitive,
    sink: SinkPrimitive,
    *,
    num_replicas: int | None = None,
    batch_size: int = 8,
    num_concurrency: int = 1,
    **buildflow_options: Any,
) -> Callable[[Callable[..., Any]], Consumer]:
    """Declare a consumer reading ``source`` and writing to ``sink``.

    ``num_replicas`` defaults to the run's ``--replicas`` or the CPU count; each replica
    is an OS process with its own REPLICA-scoped dependencies. Up to ``batch_size``
    events are handed to a replica at once and their rows written in one transaction.
    ``num_concurrency`` (BuildFlow's option) is how many of them a replica processes at
    once, each call in its own thread (never more than ``batch_size``): the function and
    its dependencies must then be thread-safe. BuildFlow's other Ray/autoscaler options
    (``num_cpus``, ``max_replicas``...) are accepted and have no effect.
    """
    unknown = set(buildflow_options) - RAY_CONSUMER_OPTIONS
    if unknown:
        raise TypeError(f"consumer() got unexpected keyword argument(s): {sorted(unknown)}")
    if not isinstance(source, SourcePrimitive):
        raise ConfigError(f"consumer source must be a stream primitive, got {source!r}")
    if not isinstance(sink, SinkPrimitive):
        raise ConfigError(f"consumer sink must be a table primitive, got {sink!r}")

    def wrap(function: Callable[..., Any]) -> Consumer:
        return Consumer(
            function,
            source,
            sink,
            num_replicas=num_replicas,
            batch_size=batch_size,
            num_concurrency=num_concurrency,
        )

    return wrap
