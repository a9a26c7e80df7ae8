"""What the emulators lack, for the stream's apply tests: IAM bindings and bucket
notification configurations.

Google's Pub/Sub emulator answers 501 to IAM calls, and fake-gcs-server has no
notificationConfigs API (404). ``EmulatorWithIam`` is the Google transport on the Pub/Sub
emulator for everything else (topics, subscriptions), keeping only IAM bindings in memory
(a resource's bindings go with it, as in Pub/Sub); ``Notifications`` keeps bucket
notification configurations, refusing one as Cloud Storage does when the topic does not
exist or the service agent may not publish to it. Both are passed to the stream
explicitly::

    pubsub = EmulatorWithIam()
    stream = GCSFileChangeStream(bucket, pubsub=pubsub, notifications=Notifications(pubsub))
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence

from google.api_core import exceptions as api_exceptions

from tideflow.io.gcp.google_transport import GooglePubSubTransport
from tideflow.io.gcp.transport import NotificationConfig, NotificationTransport, SubscriptionConfig

PUBLISHER_ROLE = "roles/pubsub.publisher"


class EmulatorWithIam(GooglePubSubTransport):
    """The emulator's topics and subscriptions, in-memory IAM; ``writes`` records each
    change made (method, resource)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, str]] = []
        self._bindings: dict[tuple[str, str], set[str]] = {}
        self._iam_lock = threading.Lock()

    def create_topic(self, topic: str) -> None:
        self.writes.append(("create_topic", topic))
        super().create_topic(topic)

    def delete_topic(self, topic: str) -> None:
        self.writes.append(("delete_topic", topic))
        super().delete_topic(topic)
        self._forget(topic)

    def create_subscription(self, config: SubscriptionConfig) -> None:
        self.writes.append(("create_subscription", config.name))
        super().create_subscription(config)

    def update_subscription(self, config: SubscriptionConfig) -> None:
        self.writes.append(("update_subscription", config.name))
        super().update_subscription(config)

    def delete_subscription(self, subscription: str) -> None:
        self.writes.append(("delete_subscription", subscription))
        super().delete_subscription(subscription)
        self._forget(subscription)

    def _forget(self, resource: str) -> None:
        with self._iam_lock:
            self._bindings = {k: v for k, v in self._bindings.items() if k[0] != resource}

    def _require(self, resource: str) -> None:
        found = (
            self.get_subscription(resource) is not None
            if "/subscriptions/" in resource
            else self.topic_exists(resource)
        )
        if not found:
            raise api_exceptions.NotFound(f"Resource not found (resource={resource}).")

    def iam_members(self, resource: str, role: str) -> frozenset[str]:
        self._require(resource)
        with self._iam_lock:
            return frozenset(self._bindings.get((resource, role), ()))

    def add_iam_member(self, resource: str, *, role: str, member: str) -> None:
        self.writes.append(("add_iam_member", resource))
        self._require(resource)
        with self._iam_lock:
            self._bindings.setdefault((resource, role), set()).add(member)


class Notifications(NotificationTransport):
    """A bucket's notification configurations, checked against ``pubsub`` on create."""

    def __init__(self, pubsub: EmulatorWithIam, *, project_number: int = 123456789) -> None:
        self.pubsub = pubsub
        self.project_number = project_number
        self._configs: dict[str, list[NotificationConfig]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def list_notifications(self, bucket: str) -> list[NotificationConfig]:
        with self._lock:
            return list(self._configs.get(bucket, []))

    def create_notification(
        self, bucket: str, *, topic: str, event_types: Sequence[str], payload_format: str
    ) -> NotificationConfig:
        # Cloud Storage checks both before it accepts a configuration.
        if not self.pubsub.topic_exists(topic):
            raise api_exceptions.BadRequest(f"Cloud Pub/Sub topic {topic} does not exist")
        agent = self.service_agent("")
        if f"serviceAccount:{agent}" not in self.pubsub.iam_members(topic, PUBLISHER_ROLE):
            raise api_exceptions.Forbidden(
                f"The service account '{agent}' does not have permission to publish messages "
                f"to to the Cloud Pub/Sub topic '//pubsub.googleapis.com/{topic}', or that "
                "topic does not exist."
            )
        config = NotificationConfig(
            notification_id=str(next(self._ids)),
            topic=topic,
            event_types=tuple(event_types),
            payload_format=payload_format,
        )
        with self._lock:
            self._configs.setdefault(bucket, []).append(config)
        return config

    def delete_notification(self, bucket: str, notification_id: str) -> None:
        with self._lock:
            configs = self._configs.get(bucket, [])
            kept = [c for c in configs if c.notification_id != notification_id]
            if len(kept) == len(configs):
                raise api_exceptions.NotFound(f"notification {notification_id} not found")
            self._configs[bucket] = kept

    def service_agent(self, project: str) -> str:
        return f"service-{self.project_number}@gs-project-accounts.iam.gserviceaccount.com"
