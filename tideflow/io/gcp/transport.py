"""The Pub/Sub and bucket-notification calls the gcp stream makes, behind two small interfaces.

``PubSubTransport`` and ``NotificationTransport`` list every call ``GCSFileChangeStream``
and its source make. ``tideflow.io.gcp.google_transport`` implements them with the
Google client libraries (also against Google's Pub/Sub emulator); tests pass, explicitly,
the Google transport wrapped where they need what the emulator cannot do (IAM bindings,
injected faults), and an in-memory notification transport (no emulator has bucket
notification configurations).

Contract: resource names are full paths (``projects/P/topics/T``,
``projects/P/subscriptions/S``); lookups return None or False for a missing resource;
every other failure raises the ``google.api_core.exceptions`` error Google would
(``NotFound``, ``AlreadyExists``, ``PermissionDenied`` ...), which callers translate.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True)
class SubscriptionConfig:
    """The settings tideflow manages on a subscription.

    ``max_delivery_attempts`` (5 to 100) applies only with a ``dead_letter_topic``.
    ``retry_min_seconds``/``retry_max_seconds`` (0 to 600) are Pub/Sub's retry policy:
    the exponential backoff before a nacked or expired message is delivered again.
    ``retention_seconds`` is how long unacknowledged messages are kept (Pub/Sub's default,
    7 days, when None).
    """

    name: str
    topic: str
    ack_deadline_seconds: int
    dead_letter_topic: str | None = None
    max_delivery_attempts: int | None = None
    retry_min_seconds: int | None = None
    retry_max_seconds: int | None = None
    retention_seconds: int | None = None


@dataclasses.dataclass(frozen=True)
class ReceivedMessage:
    """One delivery of a message; ``delivery_attempt`` counts from 1 (0 when unknown)."""

    ack_id: str
    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: datetime.datetime
    delivery_attempt: int


@dataclasses.dataclass(frozen=True)
class NotificationConfig:
    """A bucket's notification configuration (``topic`` is a full topic path)."""

    notification_id: str
    topic: str
    event_types: tuple[str, ...]
    payload_format: str


class PubSubTransport:
    """Topics, subscriptions, IAM bindings and message calls of Pub/Sub."""

    def topic_exists(self, topic: str) -> bool:
        raise NotImplementedError(f"{type(self).__name__} must implement topic_exists()")

    def create_topic(self, topic: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement create_topic()")

    def delete_topic(self, topic: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement delete_topic()")

    def get_subscription(self, subscription: str) -> SubscriptionConfig | None:
        raise NotImplementedError(f"{type(self).__name__} must implement get_subscription()")

    def create_subscription(self, config: SubscriptionConfig) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement create_subscription()")

    def update_subscription(self, config: SubscriptionConfig) -> None:
        """Change the ack deadline, dead-letter and retry policies and the retention (the
        topic cannot change)."""
        raise NotImplementedError(f"{type(self).__name__} must implement update_subscription()")

    def delete_subscription(self, subscription: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement delete_subscription()")

    def iam_members(self, resource: str, role: str) -> frozenset[str]:
        """Members holding ``role`` on a topic or subscription."""
        raise NotImplementedError(f"{type(self).__name__} must implement iam_members()")

    def add_iam_member(self, resource: str, *, role: str, member: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement add_iam_member()")

    def publish(self, topic: str, data: bytes, attributes: dict[str, str]) -> str:
        """Publish one message and wait until Pub/Sub stored it; its message id."""
        return self.publish_all(topic, [(data, attributes)])[0]

    def publish_all(
        self, topic: str, messages: Sequence[tuple[bytes, dict[str, str]]]
    ) -> list[str]:
        """Publish ``(data, attributes)`` messages together (sent in batches, not one
        round trip each) and wait until Pub/Sub stored every one; their ids, in order."""
        raise NotImplementedError(f"{type(self).__name__} must implement publish_all()")

    def pull(
        self, subscription: str, *, max_messages: int, timeout: float
    ) -> list[ReceivedMessage]:
        """Up to ``max_messages`` deliveries, waiting at most ``timeout`` seconds for one.

        ``timeout`` is the call's deadline: a pull cancelled by it may already have leased
        messages that never arrive (they come back after their ack deadline, one delivery
        attempt spent), so sources call it with a long one, on their own thread.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement pull()")

    def acknowledge(self, subscription: str, ack_ids: Sequence[str]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement acknowledge()")

    def modify_ack_deadline(
        self, subscription: str, ack_ids: Sequence[str], *, seconds: int
    ) -> None:
        """Extend leases, or (``seconds=0``) hand the messages back for redelivery now."""
        raise NotImplementedError(f"{type(self).__name__} must implement modify_ack_deadline()")

    def close(self) -> None:
        """Release connections. Optional."""


class NotificationTransport:
    """Cloud Storage's bucket notification configurations and its service agent."""

    def list_notifications(self, bucket: str) -> list[NotificationConfig]:
        raise NotImplementedError(f"{type(self).__name__} must implement list_notifications()")

    def create_notification(
        self, bucket: str, *, topic: str, event_types: Sequence[str], payload_format: str
    ) -> NotificationConfig:
        raise NotImplementedError(f"{type(self).__name__} must implement create_notification()")

    def delete_notification(self, bucket: str, notification_id: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement delete_notification()")

    def service_agent(self, project: str) -> str:
        """The email of the project's Cloud Storage service agent (it publishes notifications)."""
        raise NotImplementedError(f"{type(self).__name__} must implement service_agent()")
