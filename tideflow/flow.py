"""``Flow``: the declaration of a whole app (primitives, service, consumers)."""

from __future__ import annotations

import dataclasses

from tideflow.consumer import Consumer
from tideflow.exceptions import ConfigError
from tideflow.io.primitive import Primitive
from tideflow.service import Service


@dataclasses.dataclass(frozen=True)
class FlowOptions:
    """Settings for a flow.

    ``stack`` names the stack the primitives were chosen for (``local``, ``gcp``, ``aws``);
    ``gcp_service_account_info`` is service-account JSON for the gcp stack (else
    Application Default Credentials); ``num_replicas`` is the default replica count
    per consumer (else the CPU count).
    """

    stack: str = "local"
    gcp_service_account_info: str | None = None
    num_replicas: int | None = None


class Flow:
    """What the app is made of. Declarative only: ``tideflow`` plans, applies and runs it."""

    def __init__(self, flow_options: FlowOptions | None = None, *, flow_id: str = "app") -> None:
        self.options = flow_options or FlowOptions()
        self.flow_id = flow_id
        self._managed: list[Primitive] = []
        self.services: list[Service] = []
        self.consumers: list[Consumer] = []

    def manage(self, *primitives: Primitive) -> None:
        """Have ``tideflow apply`` create, and ``tideflow destroy`` remove, these primitives."""
        for primitive in primitives:
            if not isinstance(primitive, Primitive):
                raise ConfigError(f"Flow.manage() takes primitives, got {primitive!r}")
            self._managed.append(primitive)

    def add_service(self, service: Service) -> None:
        if any(s.service_id == service.service_id for s in self.services):
            raise ConfigError(f"a service with id {service.service_id!r} was already added")
        self.services.append(service)

    def add_consumer(self, consumer: Consumer) -> None:
        if not isinstance(consumer, Consumer):
            raise ConfigError(
                f"Flow.add_consumer() takes a function decorated with @consumer, got {consumer!r}"
            )
        if any(c.name == consumer.name for c in self.consumers):
            raise ConfigError(f"a consumer named {consumer.name!r} was already added")
        self.consumers.append(consumer)

    def consumer(self, name: str) -> Consumer:
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
        return list(ordered.values())
