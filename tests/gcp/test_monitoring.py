"""A Pub/Sub subscription's backlog, read from Cloud Monitoring.

No emulator serves Cloud Monitoring, so the one call the source makes
(``MetricService.ListTimeSeries``) is answered by a gRPC server in the test, at the
transport: the real client library sends its real request over gRPC and parses the
answer. Under Google's Pub/Sub emulator the stream does not ask Monitoring at all.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.cloud import monitoring_v3
from google.cloud.monitoring_v3.services.metric_service.transports import (
    MetricServiceGrpcTransport,
)

from tideflow.io.gcp import GCSBucket, GCSFileChangeStream
from tideflow.io.gcp.monitoring import OLDEST_AGE, UNDELIVERED, SubscriptionBacklog

SUBSCRIPTION = "projects/tideflow-test/subscriptions/photos-changes"


class MetricService:
    """Answers ListTimeSeries with the points set in ``points`` (per metric type)."""

    def __init__(self) -> None:
        self.requests: list[monitoring_v3.ListTimeSeriesRequest] = []
        self.points: dict[str, list[tuple[int, int]]] = {}  # metric -> [(end time, value)]
        self.refuse = False

    def list_time_series(
        self, request: monitoring_v3.ListTimeSeriesRequest, context: grpc.ServicerContext
    ) -> monitoring_v3.ListTimeSeriesResponse:
        self.requests.append(request)
        if self.refuse:
            context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                "Permission monitoring.timeSeries.list denied (or the resource may not exist).",
            )
        metric = request.filter.split('"')[1]
        points = [
            monitoring_v3.Point(
                interval=monitoring_v3.TimeInterval(
                    end_time=datetime.datetime.fromtimestamp(at, datetime.UTC)
                ),
                value=monitoring_v3.TypedValue(int64_value=value),
            )
            for at, value in self.points.get(metric, [])
        ]
        series = [monitoring_v3.TimeSeries(points=points)] if points else []
        return monitoring_v3.ListTimeSeriesResponse(time_series=series)


@pytest.fixture
def monitoring() -> Iterator[tuple[MetricService, Any]]:
    """The service and a client of it (the library's own gRPC transport)."""
    service = MetricService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(
        service.list_time_series,
        request_deserializer=monitoring_v3.ListTimeSeriesRequest.deserialize,
        response_serializer=monitoring_v3.ListTimeSeriesResponse.serialize,
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "google.monitoring.v3.MetricService", {"ListTimeSeries": handler}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    transport = MetricServiceGrpcTransport(channel=channel)
    client = monitoring_v3.MetricServiceClient(transport=transport)
    yield service, client
    channel.close()
    server.stop(None)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_newest_points_are_the_backlog_and_its_oldest_age(
    monitoring: tuple[MetricService, Any],
) -> None:
    service, client = monitoring
    service.points = {
        UNDELIVERED: [(1_000, 5), (1_120, 42), (1_060, 7)],
        OLDEST_AGE: [(1_120, 17), (1_060, 3)],
    }
    clock = Clock()
    backlog = SubscriptionBacklog(SUBSCRIPTION, client=lambda: client, clock=clock)
    assert backlog.read() == (42, 17.0)
    request = service.requests[0]
    assert request.name == "projects/tideflow-test"
    assert request.filter == (
        f'metric.type = "{UNDELIVERED}" AND resource.type = "pubsub_subscription" AND '
        'resource.labels.subscription_id = "photos-changes"'
    )
    span = request.interval.end_time - request.interval.start_time
    assert span == datetime.timedelta(minutes=10)

    # Google writes a point a minute: asked again only after refresh_seconds.
    service.points[UNDELIVERED] = [(1_180, 0)]
    assert backlog.read() == (42, 17.0) and len(service.requests) == 2
    clock.now = 60
    assert backlog.read() == (0, 17.0)


def test_no_points_yet_is_unknown(monitoring: tuple[MetricService, Any]) -> None:
    _, client = monitoring
    assert SubscriptionBacklog(SUBSCRIPTION, client=lambda: client).read() == (None, None)


def test_without_the_permission_it_is_unknown_and_said_once(
    monitoring: tuple[MetricService, Any], caplog: pytest.LogCaptureFixture
) -> None:
    service, client = monitoring
    service.refuse = True
    clock = Clock()
    backlog = SubscriptionBacklog(SUBSCRIPTION, client=lambda: client, clock=clock)
    with caplog.at_level(logging.INFO, logger="tideflow.gcp"):
        assert backlog.read() == (None, None)
        clock.now = 60
        assert backlog.read() == (None, None)
        service.refuse = False
        service.points = {UNDELIVERED: [(1_000, 9)]}
        clock.now = 120
        assert backlog.read() == (9, None)
    (warning, recovered) = caplog.records
    assert "monitoring.timeSeries.list (roles/monitoring.viewer)" in warning.getMessage()
    assert "autoscaling goes by CPU and throughput only" in warning.getMessage()
    assert recovered.getMessage() == f"the backlog of {SUBSCRIPTION} is readable again"


def test_the_stream_asks_monitoring_except_under_the_emulator(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = GCSBucket(project_id="tideflow-test", bucket_name="photos")
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    source = GCSFileChangeStream(bucket).source()
    assert source.backlog is not None and source.backlog.subscription == SUBSCRIPTION

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:1")
    emulated = GCSFileChangeStream(bucket)
    with caplog.at_level(logging.INFO, logger="tideflow.gcp"):
        first, second = emulated.source(), emulated.source()
    assert first.backlog is None and second.backlog is None
    stats = first.stats()
    assert (stats.pending, stats.oldest_pending_seconds, stats.in_flight) == (None, None, 0)
    assert [r.getMessage() for r in caplog.records] == [
        f"the Pub/Sub emulator has no Cloud Monitoring: the backlog of {SUBSCRIPTION} is unknown"
    ]
