"""The Pub/Sub and notification transports on Google's client libraries.

``GooglePubSubTransport`` uses google-cloud-pubsub's publisher and subscriber clients
(gRPC; ``PUBSUB_EMULATOR_HOST`` points them at an emulator) and synchronous pull, so
tideflow decides how many messages are outstanding. ``GoogleNotificationTransport`` uses
google-cloud-storage. Errors are the libraries' own ``google.api_core`` exceptions; the
stream and its source translate them.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Sequence
from typing import Any

from google.api_core import exceptions as api_exceptions
from google.api_core import retry as retries
from google.cloud import pubsub_v1, storage  # type: ignore[attr-defined]

from tideflow.io.gcp.clients import publisher_client, subscriber_client
from tideflow.io.gcp.errors import credentials_failed
from tideflow.io.gcp.settings import GcpSettings
from tideflow.io.gcp.transport import (
    NotificationConfig,
    NotificationTransport,
    PubSubTransport,
    ReceivedMessage,
    SubscriptionConfig,
)


def _transient(exc: BaseException) -> bool:
    """Worth retrying: Pub/Sub briefly unavailable, not credentials that failed to refresh
    (which gRPC also reports as UNAVAILABLE, and the library would retry for 600 s)."""
    return isinstance(
        exc,
        api_exceptions.ServiceUnavailable
        | api_exceptions.InternalServerError
        | api_exceptions.Aborted
        | api_exceptions.Unknown,
    ) and not credentials_failed(exc)


# Admin and ack calls: at most a minute of retries (the library's default is 600 s).
RETRY = retries.Retry(predicate=_transient, initial=0.1, maximum=10.0, multiplier=2.0, timeout=60.0)

# Pub/Sub accepts at most 2,500 ack ids per request (and 512 kB); stay well below.
_ACK_CHUNK = 1000
_PUBLISH_TIMEOUT = 60.0
# The subscription fields tideflow manages (the topic cannot change).
_UPDATABLE = (
    "ack_deadline_seconds",
    "dead_letter_policy",
    "retry_policy",
    "message_retention_duration",
)


class GooglePubSubTransport(PubSubTransport):
    """Pub/Sub through google-cloud-pubsub; clients are created on first use."""

    def __init__(self, settings: GcpSettings | None = None) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._publisher: pubsub_v1.PublisherClient | None = None
        self._subscriber: pubsub_v1.SubscriberClient | None = None

    @property
    def publisher(self) -> pubsub_v1.PublisherClient:
        with self._lock:
            if self._publisher is None:
                self._publisher = publisher_client(self.settings)
            return self._publisher

    @property
    def subscriber(self) -> pubsub_v1.SubscriberClient:
        with self._lock:
            if self._subscriber is None:
                self._subscriber = subscriber_client(self.settings)
            return self._subscriber

    def topic_exists(self, topic: str) -> bool:
        try:
            self.publisher.get_topic(request={"topic": topic}, retry=RETRY)
        except api_exceptions.NotFound:
            return False
        return True

    def create_topic(self, topic: str) -> None:
        self.publisher.create_topic(request={"name": topic}, retry=RETRY)

    def delete_topic(self, topic: str) -> None:
        self.publisher.delete_topic(request={"topic": topic}, retry=RETRY)

    def get_subscription(self, subscription: str) -> SubscriptionConfig | None:
        try:
            found = self.subscriber.get_subscription(
                request={"subscription": subscription}, retry=RETRY
            )
        except api_exceptions.NotFound:
            return None
        policy = found.dead_letter_policy
        return SubscriptionConfig(
            name=found.name,
            topic=found.topic,
            ack_deadline_seconds=found.ack_deadline_seconds,
            dead_letter_topic=policy.dead_letter_topic or None,
            max_delivery_attempts=policy.max_delivery_attempts or None,
            retry_min_seconds=_seconds(found.retry_policy.minimum_backoff)
            if "retry_policy" in found
            else None,
            retry_max_seconds=_seconds(found.retry_policy.maximum_backoff)
            if "retry_policy" in found
            else None,
            retention_seconds=_seconds(found.message_retention_duration),
        )

    def create_subscription(self, config: SubscriptionConfig) -> None:
        self.subscriber.create_subscription(request=_subscription(config), retry=RETRY)

    def update_subscription(self, config: SubscriptionConfig) -> None:
        # Only the fields the config sets: a masked field left out of the body would be
        # reset to Pub/Sub's default (a retention someone raised by hand, say).
        body = _subscription(config)
        paths = [p for p in _UPDATABLE if p in body]
        self.subscriber.update_subscription(
            request={"subscription": body, "update_mask": {"paths": paths}}, retry=RETRY
        )

    def delete_subscription(self, subscription: str) -> None:
        self.subscriber.delete_subscription(request={"subscription": subscription}, retry=RETRY)

    def _iam(self, resource: str) -> Any:
        return self.subscriber if "/subscriptions/" in resource else self.publisher

    def iam_members(self, resource: str, role: str) -> frozenset[str]:
        policy = self._iam(resource).get_iam_policy(request={"resource": resource}, retry=RETRY)
        return frozenset(m for b in policy.bindings if b.role == role for m in b.members)

    def add_iam_member(self, resource: str, *, role: str, member: str) -> None:
        client = self._iam(resource)
        # Read-modify-write: the policy's etag makes a concurrent change fail, not vanish.
        policy = client.get_iam_policy(request={"resource": resource}, retry=RETRY)
        for binding in policy.bindings:
            if binding.role == role:
                if member not in binding.members:
                    binding.members.append(member)
                break
        else:
            policy.bindings.add(role=role, members=[member])
        client.set_iam_policy(request={"resource": resource, "policy": policy}, retry=RETRY)

    def publish_all(
        self, topic: str, messages: Sequence[tuple[bytes, dict[str, str]]]
    ) -> list[str]:
        # Every message is handed to the client before any is waited for: it sends them
        # in batches (up to 100 a request), not one round trip each.
        futures = [
            self.publisher.publish(topic, data, **attributes) for data, attributes in messages
        ]
        return [str(future.result(timeout=_PUBLISH_TIMEOUT)) for future in futures]

    def pull(
        self, subscription: str, *, max_messages: int, timeout: float
    ) -> list[ReceivedMessage]:
        try:
            response = self.subscriber.pull(
                request={"subscription": subscription, "max_messages": max_messages},
                timeout=max(timeout, 0.1),
                retry=RETRY,
            )
        except api_exceptions.DeadlineExceeded:
            # Nothing arrived in time. Messages caught in a cancelled pull are redelivered
            # when their ack deadline passes.
            return []
        return [
            ReceivedMessage(
                ack_id=received.ack_id,
                message_id=received.message.message_id,
                data=bytes(received.message.data),
                attributes=dict(received.message.attributes),
                publish_time=_utc(received.message.publish_time),
                delivery_attempt=received.delivery_attempt,
            )
            for received in response.received_messages
        ]

    def acknowledge(self, subscription: str, ack_ids: Sequence[str]) -> None:
        for start in range(0, len(ack_ids), _ACK_CHUNK):
            chunk = list(ack_ids[start : start + _ACK_CHUNK])
            self.subscriber.acknowledge(
                request={"subscription": subscription, "ack_ids": chunk}, retry=RETRY
            )

    def modify_ack_deadline(
        self, subscription: str, ack_ids: Sequence[str], *, seconds: int
    ) -> None:
        for start in range(0, len(ack_ids), _ACK_CHUNK):
            self.subscriber.modify_ack_deadline(
                request={
                    "subscription": subscription,
                    "ack_ids": list(ack_ids[start : start + _ACK_CHUNK]),
                    "ack_deadline_seconds": seconds,
                },
                retry=RETRY,
            )

    def close(self) -> None:
        with self._lock:
            if self._subscriber is not None:
                self._subscriber.close()
            if self._publisher is not None:
                self._publisher.stop()
            self._publisher = self._subscriber = None


class GoogleNotificationTransport(NotificationTransport):
    """Bucket notification configurations through google-cloud-storage."""

    def __init__(self, storage_client: Callable[[], storage.Client]) -> None:
        self._storage = storage_client

    def list_notifications(self, bucket: str) -> list[NotificationConfig]:
        return [_notification(n) for n in self._storage().bucket(bucket).list_notifications()]

    def create_notification(
        self, bucket: str, *, topic: str, event_types: Sequence[str], payload_format: str
    ) -> NotificationConfig:
        _, project, _, topic_name = topic.split("/")
        notification = (
            self._storage()
            .bucket(bucket)
            .notification(
                topic_name=topic_name,
                topic_project=project,
                event_types=list(event_types),
                payload_format=payload_format,
            )
        )
        notification.create()
        return _notification(notification)

    def delete_notification(self, bucket: str, notification_id: str) -> None:
        self._storage().bucket(bucket).notification(notification_id=notification_id).delete()

    def service_agent(self, project: str) -> str:
        return str(self._storage().get_service_account_email(project=project))


def _subscription(config: SubscriptionConfig) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": config.name,
        "topic": config.topic,
        "ack_deadline_seconds": config.ack_deadline_seconds,
        # Present but without a ttl: the subscription never expires. Left out, Pub/Sub
        # deletes a subscription after 31 days without subscribers.
        "expiration_policy": {},
    }
    if config.dead_letter_topic:
        body["dead_letter_policy"] = {
            "dead_letter_topic": config.dead_letter_topic,
            "max_delivery_attempts": config.max_delivery_attempts,
        }
    if config.retry_min_seconds is not None or config.retry_max_seconds is not None:
        body["retry_policy"] = {
            # Pub/Sub's defaults for the one not given; 0 is a value, not "unset".
            "minimum_backoff": {"seconds": _or(config.retry_min_seconds, 10)},
            "maximum_backoff": {"seconds": _or(config.retry_max_seconds, 600)},
        }
    if config.retention_seconds is not None:
        body["message_retention_duration"] = {"seconds": config.retention_seconds}
    return body


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _seconds(duration: Any) -> int | None:
    """A protobuf Duration (as proto-plus hands it: a ``timedelta``) in whole seconds."""
    if duration is None:
        return None
    if isinstance(duration, datetime.timedelta):
        return round(duration.total_seconds())
    return int(getattr(duration, "seconds", 0))


def _notification(notification: Any) -> NotificationConfig:
    return NotificationConfig(
        notification_id=str(notification.notification_id),
        topic=f"projects/{notification.topic_project}/topics/{notification.topic_name}",
        event_types=tuple(notification.event_types or ()),
        payload_format=str(notification.payload_format),
    )


def _utc(value: datetime.datetime) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(value.timestamp(), tz=datetime.UTC)
