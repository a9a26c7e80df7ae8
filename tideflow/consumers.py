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

MAX_REPLICAS = 256


@dataclasses.dataclass(frozen=True)
class Autoscaling:
    """BuildFlow's autoscaler options of one consumer (``tideflow.runtime.autoscaler``).

    It scales when ``enabled`` is True, or, when ``enabled`` is None (the default), when
    ``max_replicas`` is above ``min_replicas``: a consumer that sets nothing keeps a fixed
    number of replicas. ``max_replicas`` None means the machine's CPU count.
    """

    enabled: bool | None = None
    min_replicas: int = 1
    max_replicas: int | None = None
    frequency_seconds: float = 60.0
    backlog_burn_seconds: float = 60.0
    cpu_percent_target: float = 25.0

    @property
    def scales(self) -> bool:
        if self.enabled is not None:
            return self.enabled
        return self.max_replicas is not None and self.max_replicas > self.min_replicas

    def problem(self, num_replicas: int | None) -> str | None:
        """What is wrong with these options (and a declared start), or None."""
        if not 1 <= self.min_replicas <= MAX_REPLICAS:
            return f"min_replicas must be from 1 to {MAX_REPLICAS}, got {self.min_replicas}"
        top = MAX_REPLICAS if self.max_replicas is None else self.max_replicas
        if not self.min_replicas <= top <= MAX_REPLICAS:
            return (
                f"max_replicas must be from min_replicas ({self.min_replicas}) to "
                f"{MAX_REPLICAS}, got {self.max_replicas}"
            )
        if num_replicas is not None and not self.min_replicas <= num_replicas <= top:
            return (
                f"num_replicas ({num_replicas}) must be between min_replicas "
                f"({self.min_replicas}) and max_replicas ({top})"
            )
        if not 0 < self.frequency_seconds <= 3600:
            return (
                "autoscale_frequency_secs must be above 0 and at most 3600, "
                f"got {self.frequency_seconds:g}"
            )
        if not 0 < self.backlog_burn_seconds <= 86400:
            return (
                "consumer_backlog_burn_threshold must be above 0 and at most 86400 seconds, "
                f"got {self.backlog_burn_seconds:g}"
            )
        if not 0 < self.cpu_percent_target <= 100:
            return (
                "consumer_cpu_percent_target must be above 0 and at most 100, "
                f"got {self.cpu_percent_target:g}"
            )
        return None


@dataclasses.dataclass(eq=False)
class Consumer:
    """A processor: ``function(event, **dependencies) -> row | list[row] | None``."""

    function: Callable[..., Any]
    source: SourcePrimitive
    sink: SinkPrimitive
    num_replicas: int | None = None
    batch_size: int = 8
    num_concurrency: int = 1
    autoscaling: Autoscaling = dataclasses.field(default_factory=Autoscaling)

    def __post_init__(self) -> None:
        functools.update_wrapper(self, self.function)
        if self.num_concurrency < 1:
            raise ConfigError(
                f"consumer {self.name}: num_concurrency must be at least 1, "
                f"got {self.num_concurrency}"
            )
        problem = self.autoscaling.problem(self.num_replicas)
        if problem:
            raise ConfigError(f"consumer {self.name}: {problem}")
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
        if "schema" not in self.sink.option_checks or self.sink.schema is not None:
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


# BuildFlow's Ray knobs: accepted so BuildFlow apps run, without effect (a replica is one
# OS process; its log level is the run's).
RAY_CONSUMER_OPTIONS = frozenset({"num_cpus", "log_level"})


def consumer(
    source: SourcePrimitive,
    sink: SinkPrimitive,
    *,
    num_replicas: int | None = None,
    batch_size: int = 8,
    num_concurrency: int = 1,
    enable_autoscaler: bool | None = None,
    min_replicas: int | None = None,
    max_replicas: int | None = None,
    autoscale_frequency_secs: float | None = None,
    consumer_backlog_burn_threshold: float | None = None,
    consumer_cpu_percent_target: float | None = None,
    **buildflow_options: Any,
) -> Callable[[Callable[..., Any]], Consumer]:
    """Declare a consumer reading ``source`` and writing to ``sink``.

    Each replica is an OS process with its own REPLICA-scoped dependencies. Up to
    ``batch_size`` events are handed to a replica at once and their rows written in one
    transaction. ``num_concurrency`` (BuildFlow's option) is how many of them a replica
    processes at once, each call in its own thread (never more than ``batch_size``): the
    function and its dependencies must then be thread-safe.

    BuildFlow's autoscaler options: with ``max_replicas`` above ``min_replicas`` (default
    1), or ``enable_autoscaler=True`` (``max_replicas`` then defaults to the CPU count),
    the run adds and removes replicas in that range every ``autoscale_frequency_secs``
    (60): more when the backlog would take longer than ``consumer_backlog_burn_threshold``
    seconds (60) to burn or keeps growing, fewer when the replicas' CPU is under
    ``consumer_cpu_percent_target`` percent (25). ``num_replicas`` is the start (default:
    the run's ``--replicas``, else ``min_replicas`` when scaling, else the CPU count).
    None means the default, for every option. ``num_cpus`` and ``log_level`` are accepted
    and have no effect.
    """
    unknown = set(buildflow_options) - RAY_CONSUMER_OPTIONS
    if unknown:
        raise TypeError(f"consumer() got unexpected keyword argument(s): {sorted(unknown)}")
    if not isinstance(source, SourcePrimitive):
        raise ConfigError(f"consumer source must be a stream primitive, got {source!r}")
    if not isinstance(sink, SinkPrimitive):
        raise ConfigError(f"consumer sink must be a table primitive, got {sink!r}")

    given: dict[str, Any] = {
        "enabled": enable_autoscaler,
        "min_replicas": min_replicas,
        "max_replicas": max_replicas,
        "frequency_seconds": autoscale_frequency_secs,
        "backlog_burn_seconds": consumer_backlog_burn_threshold,
        "cpu_percent_target": consumer_cpu_percent_target,
    }
    autoscaling = Autoscaling(**{k: v for k, v in given.items() if v is not None})

    def wrap(function: Callable[..., Any]) -> Consumer:
        return Consumer(
            function,
            source,
            sink,
            num_replicas=num_replicas,
            batch_size=batch_size,
            num_concurrency=num_concurrency,
            autoscaling=autoscaling,
        )

    return wrap
