"""``build_flow``: the whole app from its settings, the one place that reads them.

Everything the app is made of is built here from ``settings``, so two apps with different
settings can live in one process (tests do that). ``main.py`` builds the app ``tideflow``
runs: ``app = build_flow(get_settings())``.
"""

from __future__ import annotations

from image_classification.dependencies import bindings
from image_classification.primitives import build_primitives
from image_classification.processors.consumer import build_consumer
from image_classification.processors.service import build_service
from image_classification.settings import Settings
from tideflow import Flow, FlowOptions


def build_flow(settings: Settings) -> Flow:
    primitives = build_primitives(settings)
    app = Flow(flow_options=FlowOptions(num_replicas=settings.num_replicas))
    app.manage(
        primitives.bucket,
        primitives.dataset,
        primitives.table,
        primitives.corrections,
        primitives.file_change_stream,
    )
    app.add_service(build_service(settings))
    app.add_consumer(build_consumer(settings, primitives))
    # What the endpoints and the consumer ask for is built from these settings and primitives.
    app.dependency_overrides.update(bindings(settings, primitives))
    return app
