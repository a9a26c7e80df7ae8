"""In-memory Pub/Sub and bucket notifications, for tests (like HTTPX's ``MockTransport``).

Google's Pub/Sub emulator runs the delivery tests; these fakes serve only the tests that
need what it cannot do (IAM bindings, bucket notification configurations, injected
faults, a clock moved by hand). They are passed to the stream explicitly::

    pubsub = FakePubSub()
    notifications = FakeNotifications(pubsub)
    stream = GCSFileChangeStream(gcs_bucket=bucket, pubsub=pubsub, notifications=notifications)
    stream.apply()
    notifications.object_finalized(blob._properties)   # what Cloud Storage would publish

What they model: topics and subscriptions with their errors (``NotFound``,
``AlreadyExists``, ``InvalidArgument``); leases that expire by the injectable ``clock``;
``modify_ack_deadline`` (0 hands a message back); redelivery with a new ack id; the
delivery-attempt count and forwarding to the dead-letter topic after
``max_delivery_attempts``, with Pub/Sub's ``CloudPubSubDeadLetterSource*`` attributes;
IAM bindings; notification creation failing without the topic or the publisher grant.
What they do not: ordering keys, exactly-once delivery, retention limits, quotas, and
Pub/Sub's habit of returning fewer messages than available.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from google.api_core import exceptions as api_exceptions

from tideflow.io.gcp.notifications import JSON_API_V1, OBJECT_FINALIZE, finalize_message
from tideflow.io.gcp.transport import (
    NotificationConfig,
    NotificationTransport,
    PubSubTransport,
    ReceivedMessage,
    SubscriptionConfig,
)

DETACHED_TOPIC = "_deleted-topic_"
PUBLISHER_ROLE = "roles/pubsub.publisher"


@dataclasses.dataclass
class _Message:
    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: datetime.datetime
    deliveries: int = 0
    lease_until: float = 0.0
    ack_id: str | None = None


@dataclasses.dataclass
class _Subscription:
    config: SubscriptionConfig
    messages: dict[str, _Message] = dataclasses.field(default_factory=dict)


class FakePubSub(PubSubTransport):
    """A thread-safe, in-memory Pub/Sub. ``calls`` records ``(method, resource)`` pairs."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.calls: list[tuple[str, str]] = []
        self._topics: set[str] = set()
        self._subscriptions: dict[str, _Subscription] = {}
        self._iam: dict[tuple[str, str], set[str]] = {}
        self._ids = itertools.count(1)
        self._changed = threading.Condition()

    # -- inspection, for tests ---------------------------------------------------------

    def topics(self) -> set[str]:
        with self._changed:
            return set(self._topics)

    def subscriptions(self) -> dict[str, SubscriptionConfig]:
        with self._changed:
            return {name: s.config for name, s in self._subscriptions.items()}

    def backlog(self, subscription: str) -> int:
        """Messages not yet acknowledged (leased or not)."""
        with self._changed:
            return len(self._subscription(subscription).messages)

    # -- admin ---------------------------------------------------------------------------

    def _record(self, method: str, resource: str) -> None:
        self.calls.append((method, resource))

    def _subscription(self, name: str) -> _Subscription:
        found = self._subscriptions.get(name)
        if found is None:
            raise api_exceptions.NotFound(f"Resource not found (resource={name}).")
        return found

    def _require_topic(self, topic: str) -> None:
        if topic not in self._topics:
            raise api_exceptions.NotFound(f"Resource not found (resource={topic}).")

    def topic_exists(self, topic: str) -> bool:
        with self._changed:
            self._record("topic_exists", topic)
            return topic in self._topics

    def create_topic(self, topic: str) -> None:
        with self._changed:
            self._record("create_topic", topic)
            if topic in self._topics:
                raise api_exceptions.AlreadyExists(f"Resource already exists: {topic}")
            self._topics.add(topic)

    def delete_topic(self, topic: str) -> None:
        with self._changed:
            self._record("delete_topic", topic)
            self._require_topic(topic)
            self._topics.remove(topic)
            self._iam = {k: v for k, v in self._iam.items() if k[0] != topic}
            # As in Pub/Sub, subscriptions outlive their topic, detached from it.
            for sub in self._subscriptions.values():
                if sub.config.topic == topic:
                    sub.config = dataclasses.replace(sub.config, topic=DETACHED_TOPIC)

    def get_subscription(self, subscription: str) -> SubscriptionConfig | None:
        with self._changed:
            self._record("get_subscription", subscription)
            found = self._subscriptions.get(subscription)
            return None if found is None else found.config

    def _validate(self, config: SubscriptionConfig) -> None:
        if not 10 <= config.ack_deadline_seconds <= 600:
            raise api_exceptions.InvalidArgument("ack deadline must be 10 to 600 seconds")
        if config.dead_letter_topic is not None:
            self._require_topic(config.dead_letter_topic)
            attempts = config.max_delivery_attempts or 5
            if not 5 <= attempts <= 100:
                raise api_exceptions.InvalidArgument("max_delivery_attempts must be 5 to 100")

    def create_subscription(self, config: SubscriptionConfig) -> None:
        with self._changed:
            self._record("create_subscription", config.name)
            if config.name in self._subscriptions:
                raise api_exceptions.AlreadyExists(f"Resource already exists: {config.name}")
            self._require_topic(config.topic)
            self._validate(config)
            self._subscriptions[config.name] = _Subscription(config)

    def update_subscription(self, config: SubscriptionConfig) -> None:
        with self._changed:
            self._record("update_subscription", config.name)
            found = self._subscription(config.name)
            self._validate(config)
            found.config = dataclasses.replace(config, topic=found.config.topic)

    def delete_subscription(self, subscription: str) -> None:
        with self._changed:
            self._record("delete_subscription", subscription)
            self._subscription(subscription)
            del self._subscriptions[subscription]
            self._iam = {k: v for k, v in self._iam.items() if k[0] != subscription}

    def _require_resource(self, resource: str) -> None:
        if resource not in self._topics and resource not in self._subscriptions:
            raise api_exceptions.NotFound(f"Resource not found (resource={resource}).")

    def iam_members(self, resource: str, role: str) -> frozenset[str]:
        with self._changed:
            self._record("iam_members", resource)
            self._require_resource(resource)
            return frozenset(self._iam.get((resource, role), ()))

    def add_iam_member(self, resource: str, *, role: str, member: str) -> None:
        with self._changed:
            self._record("add_iam_member", resource)
            self._require_resource(resource)
            self._iam.setdefault((resource, role), set()).add(member)

    # -- messages ------------------------------------------------------------------------

    def publish(self, topic: str, data: bytes, attributes: dict[str, str]) -> str:
        with self._changed:
            self._record("publish", topic)
            self._require_topic(topic)
            return self._publish(topic, data, attributes)

    def _publish(self, topic: str, data: bytes, attributes: dict[str, str]) -> str:
        message_id = str(next(self._ids))
        now = datetime.datetime.now(datetime.UTC)
        for sub in self._subscriptions.values():
            if sub.config.topic == topic:
                sub.messages[message_id] = _Message(message_id, data, dict(attributes), now)
        self._changed.notify_all()
        return message_id

    def pull(
        self, subscription: str, *, max_messages: int, timeout: float
    ) -> list[ReceivedMessage]:
        deadline = time.monotonic() + timeout
        with self._changed:
            self._record("pull", subscription)
            while True:
                received = self._deliver(self._subscription(subscription), max_messages)
                remaining = deadline - time.monotonic()
                if received or remaining <= 0:
                    return received
                self._changed.wait(remaining)

    def _deliver(self, sub: _Subscription, max_messages: int) -> list[ReceivedMessage]:
        now = self.clock()
        config = sub.config
        received: list[ReceivedMessage] = []
        for message in list(sub.messages.values()):
            if len(received) >= max_messages:
                break
            if message.lease_until > now:
                continue
            limit = config.max_delivery_attempts or 5
            if config.dead_letter_topic and message.deliveries >= limit:
                self._forward(sub, message)
                continue
            message.deliveries += 1
            message.ack_id = f"ack-{next(self._ids)}"
            message.lease_until = now + config.ack_deadline_seconds
            received.append(
                ReceivedMessage(
                    ack_id=message.ack_id,
                    message_id=message.message_id,
                    data=message.data,
                    attributes=dict(message.attributes),
                    publish_time=message.publish_time,
                    # Pub/Sub counts attempts only on subscriptions with a dead-letter policy.
                    delivery_attempt=message.deliveries if config.dead_letter_topic else 0,
                )
            )
        return received

    def _forward(self, sub: _Subscription, message: _Message) -> None:
        del sub.messages[message.message_id]
        topic = sub.config.dead_letter_topic
        if topic is None or topic not in self._topics:
            return
        attributes = {
            **message.attributes,
            "CloudPubSubDeadLetterSourceDeliveryCount": str(message.deliveries),
            "CloudPubSubDeadLetterSourceSubscription": sub.config.name.rsplit("/", 1)[-1],
            "CloudPubSubDeadLetterSourceTopicPublishTime": message.publish_time.isoformat(),
        }
        self._publish(topic, message.data, attributes)

    def _leased(self, sub: _Subscription, ack_ids: Sequence[str]) -> list[_Message]:
        wanted = set(ack_ids)
        return [m for m in sub.messages.values() if m.ack_id in wanted]

    def acknowledge(self, subscription: str, ack_ids: Sequence[str]) -> None:
        with self._changed:
            self._record("acknowledge", subscription)
            sub = self._subscription(subscription)
            for message in self._leased(sub, ack_ids):
                del sub.messages[message.message_id]

    def modify_ack_deadline(
        self, subscription: str, ack_ids: Sequence[str], *, seconds: int
    ) -> None:
        if not 0 <= seconds <= 600:
            raise api_exceptions.InvalidArgument("ack deadline must be 0 to 600 seconds")
        with self._changed:
            self._record("modify_ack_deadline", subscription)
            sub = self._subscription(subscription)
            for message in self._leased(sub, ack_ids):
                message.lease_until = self.clock() + seconds if seconds else 0.0
            self._changed.notify_all()


class FakeNotifications(NotificationTransport):
    """Bucket notification configs in memory; ``object_finalized`` plays Cloud Storage."""

    def __init__(
        self,
        pubsub: FakePubSub,
        *,
        project_number: int = 123456789,
    ) -> None:
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
        agent = f"serviceAccount:{self.service_agent('')}"
        if agent not in self.pubsub.iam_members(topic, PUBLISHER_ROLE):
            raise api_exceptions.Forbidden(
                f"The service account '{self.service_agent('')}' does not have permission to "
                f"publish messages to to the Cloud Pub/Sub topic '//pubsub.googleapis.com/"
                f"{topic}', or that topic does not exist."
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

    def object_finalized(self, resource: Mapping[str, Any]) -> list[str]:
        """Publish what Cloud Storage sends for the object ``resource``; the message ids."""
        bucket = str(resource["bucket"])
        sent = []
        for config in self.list_notifications(bucket):
            if config.event_types and OBJECT_FINALIZE not in config.event_types:
                continue
            data, attributes = finalize_message(
                resource,
                notification_config=(
                    f"projects/_/buckets/{bucket}/notificationConfigs/{config.notification_id}"
                ),
            )
            if config.payload_format != JSON_API_V1:
                data, attributes["payloadFormat"] = b"", config.payload_format
            sent.append(self.pubsub.publish(config.topic, data, attributes))
        return sent
