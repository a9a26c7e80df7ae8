"""Plan / apply / destroy of the file-change stream's Pub/Sub and notification resources.

Topics and subscriptions live in Google's Pub/Sub emulator; IAM bindings and bucket
notification configurations, which no emulator has, in ``tests.gcp.iam_and_notifications``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google.api_core import exceptions as api_exceptions

from tests.gcp.conftest import PROJECT, unique
from tests.gcp.iam_and_notifications import EmulatorWithIam, Notifications
from tideflow.exceptions import ConfigError, PrimitiveError
from tideflow.io.gcp import GCSBucket, GCSFileChangeStream, stream_parts
from tideflow.io.gcp.transport import NotificationConfig, SubscriptionConfig
from tideflow.io.primitive import PlanAction

STORAGE_AGENT = "serviceAccount:service-123456789@gs-project-accounts.iam.gserviceaccount.com"
PUBSUB_AGENT = "serviceAccount:service-123456789@gcp-sa-pubsub.iam.gserviceaccount.com"


@pytest.fixture
def fresh(
    offline_bucket: GCSBucket, pubsub: EmulatorWithIam, notifications: Notifications
) -> Iterator[GCSFileChangeStream]:
    stream = GCSFileChangeStream(
        offline_bucket, max_attempts=3, pubsub=pubsub, notifications=notifications
    )
    yield stream
    stream.destroy()


def test_plan_lists_every_resource_the_stream_needs(fresh: GCSFileChangeStream) -> None:
    step = fresh.plan()

    assert step.action is PlanAction.CREATE
    assert step.kind == "GCSFileChangeStream"
    assert [(c.kind, c.action) for c in step.children] == [
        ("GCPPubSubTopic", PlanAction.CREATE),
        ("GCPIAMBinding", PlanAction.CREATE),
        ("GCSNotification", PlanAction.CREATE),
        ("GCPPubSubTopic", PlanAction.CREATE),
        ("GCPPubSubSubscription", PlanAction.CREATE),
        ("GCPPubSubSubscription", PlanAction.CREATE),
        ("GCPIAMBinding", PlanAction.CREATE),
        ("GCPIAMBinding", PlanAction.CREATE),
    ]


def test_apply_creates_topics_subscriptions_notification_and_grants(
    fresh: GCSFileChangeStream, pubsub: EmulatorWithIam, notifications: Notifications
) -> None:
    fresh.apply()

    bucket = fresh.gcs_bucket.bucket_name
    assert fresh.stream_id == f"{bucket}-changes"
    assert pubsub.topic_exists(fresh.topic)
    assert pubsub.topic_exists(fresh.dead_letter_topic)
    assert pubsub.get_subscription(fresh.subscription) == SubscriptionConfig(
        name=fresh.subscription,
        topic=fresh.topic,
        ack_deadline_seconds=60,
        dead_letter_topic=fresh.dead_letter_topic,
        max_delivery_attempts=5,
        retry_min_seconds=10,
        retry_max_seconds=600,
        retention_seconds=7 * 24 * 3600,  # Pub/Sub's default: not set by tideflow
    )
    letters = pubsub.get_subscription(fresh.dead_letter_subscription)
    assert letters is not None and letters.topic == fresh.dead_letter_topic
    (notification,) = notifications.list_notifications(bucket)
    assert (notification.topic, notification.event_types, notification.payload_format) == (
        fresh.topic,
        ("OBJECT_FINALIZE",),
        "JSON_API_V1",
    )
    assert pubsub.iam_members(fresh.topic, "roles/pubsub.publisher") == {STORAGE_AGENT}
    assert pubsub.iam_members(fresh.dead_letter_topic, "roles/pubsub.publisher") == {PUBSUB_AGENT}
    assert pubsub.iam_members(fresh.subscription, "roles/pubsub.subscriber") == {PUBSUB_AGENT}


def test_apply_twice_changes_nothing(fresh: GCSFileChangeStream, pubsub: EmulatorWithIam) -> None:
    fresh.apply()
    pubsub.writes.clear()

    step = fresh.apply()

    assert not step.changes
    assert step.action is PlanAction.NO_CHANGE
    assert pubsub.writes == []


def test_a_changed_lease_or_attempt_count_updates_the_subscription(
    fresh: GCSFileChangeStream, pubsub: EmulatorWithIam
) -> None:
    fresh.apply()
    fresh.options(lease_seconds=120, max_attempts=8)

    step = fresh.plan()

    assert step.action is PlanAction.UPDATE
    (changed,) = [c for c in step.children if c.changes]
    assert changed.primitive_id == fresh.subscription
    assert changed.detail == "ack deadline 60 -> 120, max attempts 5 -> 8"
    fresh.apply()
    config = pubsub.get_subscription(fresh.subscription)
    assert config is not None
    assert (config.ack_deadline_seconds, config.max_delivery_attempts) == (120, 8)
    assert not fresh.plan().changes


def test_a_notification_in_another_format_is_replaced(
    fresh: GCSFileChangeStream, notifications: Notifications
) -> None:
    fresh.apply()
    bucket = fresh.gcs_bucket.bucket_name
    (old,) = notifications.list_notifications(bucket)
    notifications.delete_notification(bucket, old.notification_id)
    notifications.create_notification(
        bucket, topic=fresh.topic, event_types=["OBJECT_DELETE"], payload_format="NONE"
    )

    step = fresh.apply()

    assert [c.action for c in step.children if c.kind == "GCSNotification"] == [PlanAction.UPDATE]
    (current,) = notifications.list_notifications(bucket)
    assert (current.event_types, current.payload_format) == (("OBJECT_FINALIZE",), "JSON_API_V1")


def test_a_subscription_on_another_topic_is_reported_not_replaced(
    fresh: GCSFileChangeStream, pubsub: EmulatorWithIam
) -> None:
    elsewhere = f"projects/{PROJECT}/topics/{unique('elsewhere')}"
    pubsub.create_topic(elsewhere)
    pubsub.create_subscription(
        SubscriptionConfig(name=fresh.subscription, topic=elsewhere, ack_deadline_seconds=60)
    )

    (step,) = [c for c in fresh.plan().children if c.primitive_id == fresh.subscription]

    assert step.action is PlanAction.NO_CHANGE
    assert "not changed" in step.detail


def test_destroy_removes_everything_and_then_finds_it_gone(
    fresh: GCSFileChangeStream, pubsub: EmulatorWithIam, notifications: Notifications
) -> None:
    fresh.apply()
    assert fresh.plan_destroy().action is PlanAction.DELETE

    step = fresh.destroy()

    assert step.action is PlanAction.DELETE
    assert {c.action for c in step.children} == {PlanAction.DELETE}
    assert not pubsub.topic_exists(fresh.topic)
    assert not pubsub.topic_exists(fresh.dead_letter_topic)
    assert pubsub.get_subscription(fresh.subscription) is None
    assert pubsub.get_subscription(fresh.dead_letter_subscription) is None
    assert notifications.list_notifications(fresh.gcs_bucket.bucket_name) == []
    again = fresh.destroy()
    assert again.action is PlanAction.NO_CHANGE
    assert {c.detail for c in again.children} == {"already gone"}


class DeniedTopics(EmulatorWithIam):
    def create_topic(self, topic: str) -> None:
        raise api_exceptions.PermissionDenied("User not authorized to perform this action.")


def test_a_permission_error_names_the_resource_and_the_permission(
    offline_bucket: GCSBucket, notifications: Notifications
) -> None:
    stream = GCSFileChangeStream(offline_bucket, pubsub=DeniedTopics(), notifications=notifications)

    with pytest.raises(PrimitiveError) as caught:
        stream.apply()

    message = str(caught.value)
    assert "\n" not in message
    assert stream.topic in message
    assert "pubsub.topics.create" in message
    assert isinstance(caught.value.__cause__, api_exceptions.PermissionDenied)


def test_names_and_options_are_checked(
    pubsub: EmulatorWithIam, notifications: Notifications
) -> None:
    digits = GCSBucket(project_id=PROJECT, bucket_name="123-photos")
    assert GCSFileChangeStream(digits).stream_id == "gcs-123-photos-changes"
    with pytest.raises(ConfigError, match="not a valid Pub/Sub name"):
        GCSFileChangeStream(digits, stream_id="goog-stream")
    stream = GCSFileChangeStream(digits, pubsub=pubsub, notifications=notifications)
    for option, value in (
        ("max_attempts", 0),
        ("lease_seconds", 5),
        ("max_outstanding", 0),
        ("retry_min_seconds", 601),
    ):
        with pytest.raises(ConfigError, match=option):
            stream.options(**{option: value})
    stream.options(retry_min_seconds=100, retry_max_seconds=50)
    with pytest.raises(ConfigError, match="retry_min_seconds"):
        stream.plan()
    with pytest.raises(ConfigError, match="unknown option"):
        stream.options(ack_deadline=10)


def test_concurrent_applies_leave_one_notification_and_plan_reports_extras(
    fresh: GCSFileChangeStream, notifications: Notifications
) -> None:
    # 4e: creating a notification is a POST; two `apply`s racing each create one, and every
    # upload is then delivered twice. Plan must see it; apply keeps the lowest id.
    fresh.apply()
    bucket = fresh.gcs_bucket.bucket_name
    (first,) = notifications.list_notifications(bucket)
    notifications.create_notification(
        bucket, topic=fresh.topic, event_types=["OBJECT_FINALIZE"], payload_format="JSON_API_V1"
    )

    (planned,) = [c for c in fresh.plan().children if c.kind == "GCSNotification"]
    assert planned.action is PlanAction.UPDATE
    assert "1 extra configuration" in planned.detail

    fresh.apply()
    assert notifications.list_notifications(bucket) == [first]
    assert not fresh.plan().changes


class RacingNotifications(Notifications):
    """Another apply creates its configuration right after ours."""

    def create_notification(self, bucket: str, **kwargs: Any) -> NotificationConfig:
        rival = super().create_notification(bucket, **kwargs)
        super().create_notification(bucket, **kwargs)
        return rival


def test_an_apply_that_raced_another_deletes_the_duplicate(
    offline_bucket: GCSBucket, pubsub: EmulatorWithIam
) -> None:
    notifications = RacingNotifications(pubsub)
    stream = GCSFileChangeStream(offline_bucket, pubsub=pubsub, notifications=notifications)
    stream.apply()
    (kept,) = notifications.list_notifications(offline_bucket.bucket_name)
    assert kept.notification_id == "1"


class SlowGrant(Notifications):
    """Cloud Storage answers 403 until the publisher grant has propagated."""

    def __init__(self, pubsub: EmulatorWithIam, refusals: int) -> None:
        super().__init__(pubsub)
        self.refusals = refusals

    def create_notification(self, bucket: str, **kwargs: Any) -> NotificationConfig:
        if self.refusals:
            self.refusals -= 1
            raise api_exceptions.Forbidden(
                f"The service account '{self.service_agent('')}' does not have permission to "
                f"publish messages to to the Cloud Pub/Sub topic '//pubsub.googleapis.com/"
                f"{kwargs['topic']}', or that topic does not exist."
            )
        return super().create_notification(bucket, **kwargs)


def test_the_notification_waits_for_the_publisher_grant_to_propagate(
    offline_bucket: GCSBucket, pubsub: EmulatorWithIam, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4a: retried with backoff for ~2 minutes, then the error names the service agent.
    slept: list[float] = []
    monkeypatch.setattr(stream_parts.time, "sleep", slept.append)
    stream = GCSFileChangeStream(offline_bucket, pubsub=pubsub, notifications=SlowGrant(pubsub, 3))
    stream.apply()
    assert slept == [2.0, 4.0, 8.0]
    assert len(stream.notifications().list_notifications(offline_bucket.bucket_name)) == 1

    slept.clear()
    never = GCSFileChangeStream(
        GCSBucket(project_id=PROJECT, bucket_name="never-granted"),
        pubsub=pubsub,
        notifications=SlowGrant(pubsub, 10**6),
    )
    with pytest.raises(PrimitiveError) as caught:
        never.apply()
    assert 115 <= sum(slept) <= 150
    assert STORAGE_AGENT.removeprefix("serviceAccount:") in str(caught.value)
    assert "roles/pubsub.publisher" in str(caught.value)


class CallerDenied(Notifications):
    """Cloud Storage refusing the caller itself (no storage.buckets.update on the bucket)."""

    def create_notification(self, bucket: str, **kwargs: Any) -> NotificationConfig:
        raise api_exceptions.Forbidden(
            "deployer@example.iam.gserviceaccount.com does not have storage.buckets.update "
            "access to the Google Cloud Storage bucket. Permission 'storage.buckets.update' "
            "denied on resource (or it may not exist)."
        )


def test_a_403_for_the_caller_fails_at_once_and_names_the_callers_permission(
    offline_bucket: GCSBucket, pubsub: EmulatorWithIam, monkeypatch: pytest.MonkeyPatch
) -> None:
    # G10: only the service agent's missing publish grant is waited for.
    slept: list[float] = []
    monkeypatch.setattr(stream_parts.time, "sleep", slept.append)
    stream = GCSFileChangeStream(offline_bucket, pubsub=pubsub, notifications=CallerDenied(pubsub))
    with pytest.raises(PrimitiveError) as caught:
        stream.apply()
    assert slept == []
    assert "the caller needs the IAM permission storage.buckets.update" in str(caught.value)
    assert "roles/pubsub.publisher" not in str(caught.value)


def test_under_the_emulators_apply_skips_grants_and_leaves_the_notification(
    pubsub_emulator: str,
    offline_bucket: GCSBucket,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The Pub/Sub emulator answers 501 to IAM calls; fake-gcs-server publishes by itself.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")  # never called
    stream = GCSFileChangeStream(offline_bucket)
    caplog.set_level("INFO", logger="tideflow.gcp")
    try:
        step = stream.apply()
        assert {c.kind for c in step.children} == {"GCPPubSubTopic", "GCPPubSubSubscription"}
        assert not stream.apply().changes
        said = [r.getMessage() for r in caplog.records if r.name == "tideflow.gcp"]
        assert len([m for m in said if "no IAM grants" in m]) == 1
        assert len([m for m in said if "left to the Storage emulator" in m]) == 1
    finally:
        stream.destroy()
