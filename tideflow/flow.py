"""``Flow``: the declaration of a whole app (primitives, service, consumers)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from tideflow.consumers import Consumer
from tideflow.consumers import consumer as consumer_decorator
from tideflow.dependencies.models import Provider
from tideflow.exceptions import ConfigError
from tideflow.home import STACK_ENV
from tideflow.io.primitive import Primitive, SinkPrimitive, SourcePrimitive
from tideflow.service import Service

SERVICE_ACCOUNT_ENV = "GCP_SERVICE_ACCOUNT_INFO"  # read by the gcp provider


@dataclasses.dataclass(frozen=True)
class FlowOptions:
    """Settings for a flow.

    ``num_replicas`` is the default replica count per consumer (else the CPU count).
    The stack is chosen by ``--stack``/``STACK`` (else buildflow.yaml's first), and each
    provider reads its own settings (``tideflow.stacks``).
    """

    num_replicas: int | None = None
    # BuildFlow's FlowOptions(stack=..., gcp_service_account_info=...), accepted so that a
    # BuildFlow app runs unchanged. The stack is still chosen by --stack/$STACK (the flow
    # module is imported after the choice); a stack named here must agree with it. The
    # service-account JSON is the gcp provider's own GCP_SERVICE_ACCOUNT_INFO setting.
    stack: str | None = None
    gcp_service_account_info: str | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.num_replicas is not None and not 1 <= self.num_replicas <= 256:
            raise ConfigError(f"FlowOptions(num_replicas={self.num_replicas}): use 1 to 256")
        chosen = os.environ.get(STACK_ENV)
        if self.stack is not None and chosen is not None and self.stack != chosen:
            raise ConfigError(
                f"FlowOptions(stack={self.stack!r}) but tideflow runs stack {chosen!r}; "
                "choose the stack with --stack or STACK (or drop stack= from FlowOptions)"
            )
        if self.gcp_service_account_info:
            current = os.environ.setdefault(SERVICE_ACCOUNT_ENV, self.gcp_service_account_info)
            if current != self.gcp_service_account_info:
                raise ConfigError(
                    f"FlowOptions(gcp_service_account_info=...) differs from "
                    f"${SERVICE_ACCOUNT_ENV}; set only one of them"
                )


class Flow:
    """What the app is made of. Declarative only: ``tideflow`` plans, applies and runs it.

    ``dependency_overrides`` is FastAPI's: ``flow.dependency_overrides[provider] =
    other`` has the flow's consumers and service build ``other`` wherever ``provider`` is
    asked for (same scope). An app factory binds what it built from its settings this way,
    and tests swap a model or a warehouse. An override of a GLOBAL dependency must be a
    module-level function: its value is handed to replica processes by pickling.
    """

    def __init__(self, flow_options: FlowOptions | None = None, *, flow_id: str = "app") -> None:
        self.options = flow_options or FlowOptions()
        self.flow_id = flow_id
        self._managed: list[Primitive] = []
        self.services: list[Service] = []
        self.consumers: list[Consumer] = []
        self.dependency_overrides: dict[Provider, Provider] = {}

    def manage(self, *primitives: Primitive) -> None:
        """Have ``tideflow apply`` create, and ``tideflow destroy`` remove, these primitives."""
        for primitive in primitives:
            if not isinstance(primitive, Primitive):
                raise ConfigError(f"Flow.manage() takes primitives, got {primitive!r}")
            self._managed.append(primitive)

    def add_service(self, service: Service) -> None:
        """The flow's HTTP service; one per flow (``tideflow run`` serves one port)."""
        if self.services:
            raise ConfigError(
                f"the flow already has service {self.services[0].service_id!r}; a flow serves "
                f"one service, so put the endpoints of {service.service_id!r} on it"
            )
        self.services.append(service)

    def add_consumer(self, consumer: Consumer) -> None:
        if not isinstance(consumer, Consumer):
            raise ConfigError(
                f"Flow.add_consumer() takes a function decorated with @consumer, got {consumer!r}"
            )
        if any(c.name == consumer.name for c in self.consumers):
            raise ConfigError(f"a consumer named {consumer.name!r} was already added")
        self.consumers.append(consumer)

    def consumer(
        self,
        source: SourcePrimitive,
        sink: SinkPrimitive,
        *,
        num_replicas: int | None = None,
        batch_size: int = 8,
        **buildflow_options: Any,
    ) -> Callable[[Callable[..., Any]], Consumer]:
        """BuildFlow's ``@app.consumer(source=..., sink=...)``: ``@consumer`` + ``add_consumer``."""
        declare = consumer_decorator(
            source, sink, num_replicas=num_replicas, batch_size=batch_size, **buildflow_options
        )

        def register(function: Callable[..., Any]) -> Consumer:
            declared = declare(function)
            self.add_consumer(declared)
            return declared

        return register

    def service(
        self, base_route: str = "/", *, service_id: str = "service", **options: Any
    ) -> Service:
        """BuildFlow's ``app.service(service_id=...)``: a new ``Service``, added to the flow."""
        created = Service(service_id, base_route=base_route, **options)
        self.add_service(created)
        return created

    def consumer_named(self, name: str) -> Consumer:
        """The consumer called ``name`` (its function's name)."""
        for candidate in self.consumers:
            if candidate.name == name:
                return candidate
        raise ConfigError(f"the flow has no consumer named {name!r}")

    def primitives(self) -> list[Primitive]:
        """Managed primitives plus those consumers use, dependencies first, each once."""
        ordered: dict[str, Primitive] = {}

        def visit(primitive: Primitive) -> None:
            for needed in primitive.depends_on():
                visit(needed)
            ordered.setdefault(primitive.primitive_id(), primitive)

        for primitive in self._managed:
            visit(primitive)
        for consumer in self.consumers:
            visit(consumer.source)
            visit(consumer.sink)
            visit(consumer.sink.failure_table)
        return list(ordered.values())
