"""The Google resources inside a ``GCSFileChangeStream``, each planned and applied alone.

A ``Part`` is one topic, subscription, IAM grant or bucket notification configuration:
``plan`` reads what exists, ``apply`` creates or updates it, ``plan_destroy`` and
``delete`` remove it. Creating something that appeared meanwhile, or deleting something
already gone, is not an error, so concurrent applies and destroys settle.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from google.api_core import exceptions as api_exceptions

from tideflow.exceptions import PrimitiveError
from tideflow.io.gcp.errors import translated
from tideflow.io.gcp.notifications import JSON_API_V1, OBJECT_FINALIZE
from tideflow.io.gcp.transport import (
    NotificationConfig,
    NotificationTransport,
    PubSubTransport,
    SubscriptionConfig,
)
from tideflow.io.primitive import PlanAction, PlanStep

T = TypeVar("T")


def call(
    function: Callable[[], T],
    *,
    action: str,
    resource: str,
    permission: str,
    tolerate: tuple[type[Exception], ...] = (),
) -> T | None:
    """``function()`` with errors translated to ``PrimitiveError``; None on ``tolerate``."""
    with translated(resource=resource, action=action, error=PrimitiveError, permission=permission):
        try:
            return function()
        except tolerate:
            return None


class Part:
    """One Google resource inside the stream: planned, applied and removed on its own."""

    kind = ""
    name = ""

    def step(self, action: PlanAction, detail: str = "") -> PlanStep:
        return PlanStep(self.name, self.kind, action, detail)

    def plan(self) -> PlanStep:
        raise NotImplementedError(f"{type(self).__name__} must implement plan()")

    def apply(self, action: PlanAction) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement apply()")

    def plan_destroy(self) -> PlanStep:
        raise NotImplementedError(f"{type(self).__name__} must implement plan_destroy()")

    def delete(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement delete()")


class Topic(Part):
    kind = "GCPPubSubTopic"

    def __init__(self, pubsub: PubSubTransport, name: str) -> None:
        self.pubsub = pubsub
        self.name = name

    def _exists(self) -> bool:
        return bool(
            call(
                lambda: self.pubsub.topic_exists(self.name),
                action="look up",
                resource=f"topic {self.name}",
                permission="pubsub.topics.get",
            )
        )

    def plan(self) -> PlanStep:
        return self.step(PlanAction.NO_CHANGE if self._exists() else PlanAction.CREATE)

    def apply(self, action: PlanAction) -> None:
        if action is PlanAction.CREATE:
            call(
                lambda: self.pubsub.create_topic(self.name),
                action="create",
                resource=f"topic {self.name}",
                permission="pubsub.topics.create",
                tolerate=(api_exceptions.AlreadyExists,),
            )

    def plan_destroy(self) -> PlanStep:
        if self._exists():
            return self.step(PlanAction.DELETE)
        return self.step(PlanAction.NO_CHANGE, "already gone")

    def delete(self) -> None:
        call(
            lambda: self.pubsub.delete_topic(self.name),
            action="delete",
            resource=f"topic {self.name}",
            permission="pubsub.topics.delete",
            tolerate=(api_exceptions.NotFound,),
        )


class Subscription(Part):
    kind = "GCPPubSubSubscription"

    def __init__(self, pubsub: PubSubTransport, config: SubscriptionConfig) -> None:
        self.pubsub = pubsub
        self.config = config
        self.name = config.name

    def _current(self) -> SubscriptionConfig | None:
        return call(
            lambda: self.pubsub.get_subscription(self.name),
            action="look up",
            resource=f"subscription {self.name}",
            permission="pubsub.subscriptions.get",
        )

    def plan(self) -> PlanStep:
        current = self._current()
        wanted = self.config
        if current is None:
            return self.step(PlanAction.CREATE, f"on {wanted.topic}")
        if current.topic != wanted.topic:
            # A subscription cannot move to another topic; replacing it would drop its backlog.
            return self.step(
                PlanAction.NO_CHANGE,
                f"subscribed to {current.topic}, not {wanted.topic}: not changed; delete it "
                "to have it recreated",
            )
        changes = [
            f"{label} {old} -> {new}"
            for label, old, new in (
                ("ack deadline", current.ack_deadline_seconds, wanted.ack_deadline_seconds),
                ("dead-letter topic", current.dead_letter_topic, wanted.dead_letter_topic),
                ("max attempts", current.max_delivery_attempts, wanted.max_delivery_attempts),
            )
            if old != new
        ]
        if changes:
            return self.step(PlanAction.UPDATE, ", ".join(changes))
        return self.step(PlanAction.NO_CHANGE)

    def apply(self, action: PlanAction) -> None:
        if action is PlanAction.CREATE:
            call(
                lambda: self.pubsub.create_subscription(self.config),
                action="create",
                resource=f"subscription {self.name}",
                permission="pubsub.subscriptions.create",
                tolerate=(api_exceptions.AlreadyExists,),
            )
        elif action is PlanAction.UPDATE:
            call(
                lambda: self.pubsub.update_subscription(self.config),
                action="update",
                resource=f"subscription {self.name}",
                permission="pubsub.subscriptions.update",
            )

    def plan_destroy(self) -> PlanStep:
        if self._current() is not None:
            return self.step(PlanAction.DELETE)
        return self.step(PlanAction.NO_CHANGE, "already gone")

    def delete(self) -> None:
        call(
            lambda: self.pubsub.delete_subscription(self.name),
            action="delete",
            resource=f"subscription {self.name}",
            permission="pubsub.subscriptions.delete",
            tolerate=(api_exceptions.NotFound,),
        )


class IamGrant(Part):
    kind = "GCPIAMBinding"

    def __init__(
        self,
        pubsub: PubSubTransport,
        resource: str,
        role: str,
        member: Callable[[], str],
    ) -> None:
        self.pubsub = pubsub
        self.resource = resource
        self.role = role
        self.member = member
        self.name = f"{role} on {resource}"
        self._kind = "topics" if "/topics/" in resource else "subscriptions"

    def _granted(self) -> bool:
        members = call(
            lambda: self.pubsub.iam_members(self.resource, self.role),
            action="read the IAM policy of",
            resource=self.resource,
            permission=f"pubsub.{self._kind}.getIamPolicy",
            # The resource itself is created earlier in the same apply.
            tolerate=(api_exceptions.NotFound,),
        )
        return members is not None and self.member() in members

    def plan(self) -> PlanStep:
        action = PlanAction.NO_CHANGE if self._granted() else PlanAction.CREATE
        return self.step(action, self.member())

    def apply(self, action: PlanAction) -> None:
        if action is PlanAction.CREATE:
            call(
                lambda: self.pubsub.add_iam_member(
                    self.resource, role=self.role, member=self.member()
                ),
                action=f"grant {self.role} on",
                resource=self.resource,
                permission=f"pubsub.{self._kind}.setIamPolicy",
            )


class BucketNotification(Part):
    kind = "GCSNotification"

    def __init__(self, notifications: NotificationTransport, bucket: str, topic: str) -> None:
        self.notifications = notifications
        self.bucket = bucket
        self.topic = topic
        self.name = f"gs://{bucket} -> {topic}"

    def _ours(self) -> list[NotificationConfig]:
        """The bucket's notification configurations that publish to our topic."""
        configs = call(
            lambda: self.notifications.list_notifications(self.bucket),
            action="list the notifications of",
            resource=f"bucket gs://{self.bucket}",
            permission="storage.buckets.get",
            tolerate=(api_exceptions.NotFound,),
        )
        return [c for c in configs or [] if c.topic == self.topic]

    def plan(self) -> PlanStep:
        ours = self._ours()
        if not ours:
            return self.step(PlanAction.CREATE, f"{OBJECT_FINALIZE}, {JSON_API_V1}")
        if any(c.payload_format == JSON_API_V1 and OBJECT_FINALIZE in c.event_types for c in ours):
            return self.step(PlanAction.NO_CHANGE)
        return self.step(PlanAction.UPDATE, f"recreate as {OBJECT_FINALIZE}, {JSON_API_V1}")

    def apply(self, action: PlanAction) -> None:
        if action is PlanAction.NO_CHANGE:
            return
        if action is PlanAction.UPDATE:
            # Notification configurations cannot be edited, only replaced.
            self.delete()
        call(
            lambda: self.notifications.create_notification(
                self.bucket,
                topic=self.topic,
                event_types=[OBJECT_FINALIZE],
                payload_format=JSON_API_V1,
            ),
            action="create the notification of",
            resource=f"bucket gs://{self.bucket}",
            permission="storage.buckets.update",
        )

    def plan_destroy(self) -> PlanStep:
        if self._ours():
            return self.step(PlanAction.DELETE)
        return self.step(PlanAction.NO_CHANGE, "already gone")

    def delete(self) -> None:
        for config in self._ours():
            call(
                functools.partial(
                    self.notifications.delete_notification, self.bucket, config.notification_id
                ),
                action="delete the notification of",
                resource=f"bucket gs://{self.bucket}",
                permission="storage.buckets.update",
                tolerate=(api_exceptions.NotFound,),
            )
