"""A Pub/Sub subscription's backlog, read from Cloud Monitoring.

The Pub/Sub API does not say how many messages wait; Cloud Monitoring does:
``pubsub.googleapis.com/subscription/num_undelivered_messages`` (messages not yet acked,
which includes those leased to a consumer: Pub/Sub does not tell them apart) and
``.../oldest_unacked_message_age`` (seconds). Google samples both every minute and
publishes them a few minutes late, so the figures lag; they are read at most once per
``refresh_seconds`` (default 60) and kept in between. Reading them needs the IAM
permission ``monitoring.timeSeries.list`` (``roles/monitoring.viewer``); without it, or
while Monitoring is unreachable, the backlog is unknown (None) and that is logged once.
Google's Pub/Sub emulator has no Monitoring API: the stream does not ask it then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from tideflow.exceptions import ConfigError, SourceError, TideflowError
from tideflow.io.gcp.clients import credentials
from tideflow.io.gcp.errors import translated
from tideflow.io.gcp.settings import GcpSettings

logger = logging.getLogger("tideflow.gcp")

UNDELIVERED = "pubsub.googleapis.com/subscription/num_undelivered_messages"
OLDEST_AGE = "pubsub.googleapis.com/subscription/oldest_unacked_message_age"
# How far back to look for the newest point (Google writes one a minute, minutes late).
LOOKBACK_SECONDS = 600


def metric_client(settings: GcpSettings | None = None) -> Any:
    """Cloud Monitoring's client, with the same credentials as the other Google clients."""
    try:
        from google.cloud import monitoring_v3
    except ImportError as exc:
        raise ConfigError(
            "reading a Pub/Sub backlog needs google-cloud-monitoring (pip install "
            "google-cloud-monitoring)"
        ) from exc
    return monitoring_v3.MetricServiceClient(
        credentials=credentials(emulated=False, settings=settings)
    )


class SubscriptionBacklog:
    """``read()``: (messages not yet acked, age of the oldest in seconds), None where unknown."""

    def __init__(
        self,
        subscription: str,
        *,
        client: Callable[[], Any] = metric_client,
        refresh_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # projects/<project>/subscriptions/<id>
        _, self.project, _, self.subscription_id = subscription.split("/")
        self.subscription = subscription
        self._client_factory = client
        self._client: Any = None
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._value: tuple[int | None, float | None] = (None, None)
        self._warned = False

    def read(self) -> tuple[int | None, float | None]:
        with self._lock:
            now = self.clock()
            if self._read_at is None or now - self._read_at >= self.refresh_seconds:
                self._read_at = now
                self._value = self._ask()
            return self._value

    def _ask(self) -> tuple[int | None, float | None]:
        try:
            undelivered = self._newest(UNDELIVERED)
            oldest = self._newest(OLDEST_AGE)
        except TideflowError as exc:
            if not self._warned:
                self._warned = True
                logger.warning(
                    "the backlog of %s is unknown (autoscaling goes by CPU and throughput "
                    "only): %s",
                    self.subscription,
                    exc,
                )
            return None, None
        if self._warned:
            self._warned = False
            logger.info("the backlog of %s is readable again", self.subscription)
        return undelivered, None if oldest is None else float(oldest)

    def _newest(self, metric: str) -> int | None:
        """The newest point of ``metric`` for the subscription, or None when there is none
        (a subscription that has not been written to yet)."""
        end = int(time.time())
        request = {
            "name": f"projects/{self.project}",
            "filter": (
                f'metric.type = "{metric}" AND resource.type = "pubsub_subscription" AND '
                f'resource.labels.subscription_id = "{self.subscription_id}"'
            ),
            "interval": {
                "start_time": {"seconds": end - LOOKBACK_SECONDS},
                "end_time": {"seconds": end},
            },
        }
        with translated(
            resource=f"Cloud Monitoring's {metric.rsplit('/', 1)[1]} of {self.subscription}",
            action="read",
            error=SourceError,
            permission="monitoring.timeSeries.list (roles/monitoring.viewer)",
        ):
            if self._client is None:
                self._client = self._client_factory()
            points = [
                point
                for series in self._client.list_time_series(request=request)
                for point in series.points
            ]
        if not points:
            return None
        newest = max(points, key=lambda p: p.interval.end_time.timestamp())
        return int(newest.value.int64_value)
