"""The Google resources inside a ``GCSFileChangeStream``, each planned and applied alone.

Each is a ``tideflow.io.composite.Part``: one topic, subscription, IAM grant or bucket
notification configuration. Creating something that appeared meanwhile, or deleting
something already gone, is not an error, so concurrent applies and destroys settle.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping

from google.api_core import exceptions as api_exceptions

from tideflow.exceptions import PrimitiveError
from tideflow.io.composite import Part
from tideflow.io.errors import Case, Outcome
from tideflow.io.gcp.errors import admin
from tideflow.io.gcp.notifications import JSON_API_V1, OBJECT_FINALIZE
from tideflow.io.gcp.transport import (
    NotificationConfig,
    NotificationTransport,
    PubSubTransport,
    SubscriptionConfig,
)
from tideflow.io.primitive import PlanAction, PlanStep

# An admin call's cases: a resource already gone when deleted, already there when created.
_GONE: Mapping[Case, Outcome] = {api_exceptions.NotFound: None}
_THERE: Mapping[Case, Outcome] = {api_exceptions.AlreadyExists: None}


class Topic(Part):
    kind = "GCPPubSubTopic"

    def __init__(self, pubsub: PubSubTransport, name: str) -> None:
        self.pubsub = pubsub
        self.name = name

    def _exists(self) -> bool:
        with admin("look up", f"topic {self.name}", "pubsub.topics.get"):
            return self.pubsub.topic_exists(self.name)

    def plan(self) -> PlanStep:
        return self.step(PlanAction.NO_CHANGE if self._exists() else PlanAction.CREATE)

    def apply(self, action: PlanAction) -> None:
        with admin("create", f"topic {self.name}", "pubsub.topics.create", cases=_THERE):
            self.pubsub.create_topic(self.name)

    def plan_destroy(self) -> PlanStep:
        if self._exists():
            return self.step(PlanAction.DELETE)
        return self.step(PlanAction.NO_CHANGE, "already gone")

    def delete(self) -> None:
        with admin("delete", f"topic {self.name}", "pubsub.topics.delete", cases=_GONE):
            self.pubsub.delete_topic(self.name)


class Subscription(Part):
    kind = "GCPPubSubSubscription"

    def __init__(self, pubsub: PubSubTransport, config: SubscriptionConfig) -> None:
        self.pubsub = pubsub
        self.config = config
        self.name = config.name

    def _current(self) -> SubscriptionConfig | None:
        with admin("look up", f"subscription {self.name}", "pubsub.subscriptions.get"):
            return self.pubsub.get_subscription(self.name)

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
                ("retry min backoff", current.retry_min_seconds, wanted.retry_min_seconds),
                ("retry max backoff", current.retry_max_seconds, wanted.retry_max_seconds),
                ("retention", current.retention_seconds, wanted.retention_seconds),
            )
            # None: Pub/Sub's default, whatever the subscription says.
            if new is not None
            if old != new
        ]
        if changes:
            return self.step(PlanAction.UPDATE, ", ".join(changes))
        return self.step(PlanAction.NO_CHANGE)

    def apply(self, action: PlanAction) -> None:
        if action is PlanAction.CREATE:
            where, permission = f"subscription {self.name}", "pubsub.subscriptions.create"
            with admin("create", where, permission, cases=_THERE):
                self.pubsub.create_subscription(self.config)
        else:
            with admin("update", f"subscription {self.name}", "pubsub.subscriptions.update"):
                self.pubsub.update_subscription(self.config)

    def plan_destroy(self) -> PlanStep:
        if self._current() is not None:
            return self.step(PlanAction.DELETE)
        return self.step(PlanAction.NO_CHANGE, "already gone")

    def delete(self) -> None:
        where, permission = f"subscription {self.name}", "pubsub.subscriptions.delete"
        with admin("delete", where, permission, cases=_GONE):
            self.pubsub.delete_subscription(self.name)


class IamGrant(Part):
    kind = "GCPIAMBinding"
    removable = False  # the binding goes with its topic or subscription

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
        # The resource itself is created earlier in the same apply: NotFound until then.
        permission = f"pubsub.{self._kind}.getIamPolicy"
        with admin("read the IAM policy of", self.resource, permission, cases=_GONE):
            return self.member() in self.pubsub.iam_members(self.resource, self.role)
        return False

    def plan(self) -> PlanStep:
        action = PlanAction.NO_CHANGE if self._granted() else PlanAction.CREATE
        return self.step(action, self.member())

    def apply(self, action: PlanAction) -> None:
        with admin(f"grant {self.role} on", self.resource, f"pubsub.{self._kind}.setIamPolicy"):
            self.pubsub.add_iam_member(self.resource, role=self.role, member=self.member())


# Cloud Storage's answer while its service agent may not publish to the topic: "The
# service account '...' does not have permission to publish messages to to the Cloud
# Pub/Sub topic '...', or that topic does not exist."
_CANNOT_PUBLISH = re.compile(r"does not have permission to publish", re.IGNORECASE)


def _agent_cannot_publish(exc: BaseException | None) -> bool:
    return isinstance(exc, api_exceptions.Forbidden | api_exceptions.PermissionDenied) and bool(
        _CANNOT_PUBLISH.search(str(exc))
    )


class BucketNotification(Part):
    """The bucket's notification configuration that publishes OBJECT_FINALIZE to the topic.

    Creating one is a non-idempotent POST: two applies racing each create one, and every
    upload is then delivered once per configuration. So ``plan`` reports extra
    configurations on the topic, and ``apply`` deletes them, keeping the one with the
    lowest id (the same one whichever apply looks). Right after the publisher grant,
    Cloud Storage may answer 403 "the service account ... does not have permission to
    publish messages" until the grant has propagated (up to ~2 minutes): ``apply``
    retries that one with backoff for ``grant_wait_seconds`` and then names the service
    agent that lacks the grant.
    """

    kind = "GCSNotification"

    def __init__(
        self,
        notifications: NotificationTransport,
        bucket: str,
        topic: str,
        *,
        agent: Callable[[], str] | None = None,
        grant_wait_seconds: float = 120.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.notifications = notifications
        self.bucket = bucket
        self.topic = topic
        self.agent = agent
        self.grant_wait_seconds = grant_wait_seconds
        self.sleep = sleep
        self.name = f"gs://{bucket} -> {topic}"

    def _ours(self) -> list[NotificationConfig]:
        """The bucket's notification configurations that publish to our topic."""
        where = f"bucket gs://{self.bucket}"
        with admin("list the notifications of", where, "storage.buckets.get", cases=_GONE):
            configs = self.notifications.list_notifications(self.bucket)
            return [c for c in configs if c.topic == self.topic]
        return []

    @staticmethod
    def _fits(config: NotificationConfig) -> bool:
        return config.payload_format == JSON_API_V1 and (
            not config.event_types or OBJECT_FINALIZE in config.event_types
        )

    @staticmethod
    def _order(config: NotificationConfig) -> tuple[int, str]:
        ident = config.notification_id
        return (int(ident), ident) if ident.isdigit() else (2**63, ident)

    def _split(self) -> tuple[NotificationConfig | None, list[NotificationConfig]]:
        """The configuration to keep, and the ones to delete."""
        ours = sorted(self._ours(), key=self._order)
        kept = next((c for c in ours if self._fits(c)), None)
        return kept, [c for c in ours if c is not kept]

    def plan(self) -> PlanStep:
        kept, extra = self._split()
        if kept is None and not extra:
            return self.step(PlanAction.CREATE, f"{OBJECT_FINALIZE}, {JSON_API_V1}")
        if kept is None:
            return self.step(PlanAction.UPDATE, f"recreate as {OBJECT_FINALIZE}, {JSON_API_V1}")
        if extra:
            ids = ", ".join(c.notification_id for c in extra)
            return self.step(
                PlanAction.UPDATE,
                f"delete {len(extra)} extra configuration(s) on the same topic ({ids}): each "
                "delivers every upload once more",
            )
        return self.step(PlanAction.NO_CHANGE)

    def apply(self, action: PlanAction) -> None:
        if action is PlanAction.NO_CHANGE:
            return
        kept, extra = self._split()
        for config in extra:
            self._delete(config)
        if kept is None:
            self._create()
            # A concurrent apply may have created one too: keep the lowest id, everywhere.
            _, extra = self._split()
            for config in extra:
                self._delete(config)

    def _create(self) -> None:
        waited, pause = 0.0, 2.0
        while True:
            try:
                with admin(
                    "create the notification of",
                    f"bucket gs://{self.bucket}",
                    "storage.buckets.update",
                ):
                    self.notifications.create_notification(
                        self.bucket,
                        topic=self.topic,
                        event_types=[OBJECT_FINALIZE],
                        payload_format=JSON_API_V1,
                    )
                return
            except PrimitiveError as exc:
                # Any other 403 (the caller lacks storage.buckets.update, say) fails at
                # once, naming the caller's missing permission.
                if not _agent_cannot_publish(exc.__cause__):
                    raise
                if waited >= self.grant_wait_seconds:
                    agent = self.agent() if self.agent is not None else "its service agent"
                    raise PrimitiveError(
                        f"Cloud Storage still may not publish to {self.topic} after "
                        f"{waited:.0f}s: grant roles/pubsub.publisher on the topic to "
                        f"{agent} (the bucket's Cloud Storage service agent; a new grant "
                        f"can take a few minutes to apply), then apply again ({exc})"
                    ) from exc.__cause__
                (self.sleep or time.sleep)(pause)
                waited += pause
                pause = min(pause * 2, 30.0)

    def _delete(self, config: NotificationConfig) -> None:
        where, permission = f"bucket gs://{self.bucket}", "storage.buckets.update"
        with admin("delete the notification of", where, permission, cases=_GONE):
            self.notifications.delete_notification(self.bucket, config.notification_id)

    def plan_destroy(self) -> PlanStep:
        if self._ours():
            return self.step(PlanAction.DELETE)
        return self.step(PlanAction.NO_CHANGE, "already gone")

    def delete(self) -> None:
        for config in self._ours():
            self._delete(config)
