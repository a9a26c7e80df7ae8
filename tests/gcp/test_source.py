"""The Pub/Sub source's ack / nack / lease / flow-control / dead-letter logic, on the fake."""

from __future__ import annotations

import threading
import time

import pytest

from tests.gcp.conftest import ManualClock
from tideflow.exceptions import SourceError
from tideflow.io.gcp import GCSFileChangeStream
from tideflow.io.gcp.fake_pubsub import FakeNotifications, FakePubSub
from tideflow.io.gcp.source import PubSubSource


def upload(notifications: FakeNotifications, stream: GCSFileChangeStream, key: str) -> str:
    """What Cloud Storage publishes when ``key`` is written; the message id."""
    (message_id,) = notifications.object_finalized(
        {
            "bucket": stream.gcs_bucket.bucket_name,
            "name": key,
            "generation": str(abs(hash(key)) % 10**12),
            "size": "3",
            "contentType": "image/png",
            "updated": "2026-05-01T10:00:00.000Z",
        }
    )
    return message_id


@pytest.fixture
def source(stream: GCSFileChangeStream) -> PubSubSource:
    created = stream.source()
    # The fake answers at once; no need to wait for stragglers when scanning dead letters.
    created.scan_timeout = 0.01
    return created


def test_pulled_events_carry_identity_and_acked_ones_are_gone(
    stream: GCSFileChangeStream,
    source: PubSubSource,
    notifications: FakeNotifications,
    pubsub: FakePubSub,
    clock: ManualClock,
) -> None:
    upload(notifications, stream, "a.png")

    (delivery,) = source.pull(max_messages=10, timeout=1)
    assert delivery.event.file_path == "a.png"
    assert delivery.event.bucket == stream.gcs_bucket.bucket_name
    assert delivery.event.reader is stream.gcs_bucket
    assert delivery.attempt == 1

    source.ack([delivery.ack_id])
    clock.advance(600)
    assert source.pull(max_messages=10, timeout=0) == []
    assert pubsub.backlog(stream.subscription) == 0
    assert source.stats().done == 1


def test_a_retryable_nack_redelivers_at_once_with_the_attempt_counted(
    stream: GCSFileChangeStream, source: PubSubSource, notifications: FakeNotifications
) -> None:
    upload(notifications, stream, "a.png")
    (first,) = source.pull(max_messages=1, timeout=1)

    source.nack(first.ack_id, error="model crashed", retryable=True)

    (second,) = source.pull(max_messages=1, timeout=0)
    assert second.event == first.event
    assert second.ack_id != first.ack_id
    assert second.attempt == 2
    assert source.dead_letters() == []


def test_after_max_attempts_the_event_is_dead_lettered_with_its_error(
    stream: GCSFileChangeStream, source: PubSubSource, notifications: FakeNotifications
) -> None:
    upload(notifications, stream, "bad.png")
    for attempt in range(1, stream.max_attempts + 1):
        (delivery,) = source.pull(max_messages=1, timeout=0)
        assert delivery.attempt == attempt
        source.nack(delivery.ack_id, error=f"failure {attempt}", retryable=True)

    assert source.pull(max_messages=1, timeout=0) == []
    (letter,) = source.dead_letters()
    assert letter.event.file_path == "bad.png"
    assert letter.attempts == stream.max_attempts
    assert letter.error == f"failure {stream.max_attempts}"
    assert source.dead_letter_for("bad.png") == letter
    assert source.dead_letter_for("other.png") is None
    assert source.stats().dead_lettered == 1


def test_a_non_retryable_failure_is_dead_lettered_at_once(
    stream: GCSFileChangeStream, source: PubSubSource, notifications: FakeNotifications
) -> None:
    upload(notifications, stream, "corrupt.png")
    (delivery,) = source.pull(max_messages=1, timeout=0)

    source.nack(delivery.ack_id, error="cannot identify image file\nline two", retryable=False)

    assert source.pull(max_messages=1, timeout=0) == []
    (letter,) = source.dead_letters()
    assert letter.attempts == 1
    assert letter.error == "cannot identify image file line two"


def test_retrying_dead_letters_delivers_them_again_with_fresh_attempts(
    stream: GCSFileChangeStream, source: PubSubSource, notifications: FakeNotifications
) -> None:
    for key in ("one.png", "two.png"):
        upload(notifications, stream, key)
    for delivery in source.pull(max_messages=2, timeout=0):
        source.nack(delivery.ack_id, error="broken", retryable=False)
    letters = {d.event.file_path: d for d in source.dead_letters()}

    assert source.retry_dead_letters([letters["two.png"].id]) == 1

    (again,) = source.pull(max_messages=5, timeout=0)
    assert again.event.file_path == "two.png"
    assert again.attempt == 1
    assert [d.event.file_path for d in source.dead_letters()] == ["one.png"]
    assert source.retry_dead_letters() == 1
    assert source.retry_dead_letters([]) == 0
    assert source.dead_letters() == []


def test_an_unextended_lease_expires_and_an_extended_one_does_not(
    stream: GCSFileChangeStream,
    source: PubSubSource,
    notifications: FakeNotifications,
    clock: ManualClock,
) -> None:
    upload(notifications, stream, "slow.png")
    upload(notifications, stream, "lost.png")
    deliveries = {d.event.file_path: d for d in source.pull(max_messages=2, timeout=0)}

    clock.advance(stream.lease_seconds - 5)
    source.extend([deliveries["slow.png"].ack_id], seconds=stream.lease_seconds)
    clock.advance(10)

    (redelivered,) = source.pull(max_messages=5, timeout=0)
    assert redelivered.event.file_path == "lost.png"
    assert redelivered.attempt == 2
    source.ack([deliveries["slow.png"].ack_id, redelivered.ack_id])
    clock.advance(600)
    assert source.pull(max_messages=5, timeout=0) == []


def test_pubsub_dead_letters_what_no_consumer_ever_finished(
    stream: GCSFileChangeStream,
    source: PubSubSource,
    notifications: FakeNotifications,
    clock: ManualClock,
) -> None:
    # A replica that dies leaves its lease to run out; Pub/Sub's own policy (at least 5
    # deliveries) then moves the message to the dead-letter topic.
    upload(notifications, stream, "killer.png")
    policy = stream.subscription_config().max_delivery_attempts
    assert policy == 5
    for _ in range(policy):
        assert len(source.pull(max_messages=1, timeout=0)) == 1
        source.release_all()  # What a crashed run process's leases amount to.
        clock.advance(stream.lease_seconds + 1)

    assert source.pull(max_messages=1, timeout=0) == []
    (letter,) = source.dead_letters()
    assert letter.event.file_path == "killer.png"
    assert letter.attempts == policy
    assert "delivery attempts exhausted" in letter.error


def test_flow_control_bounds_the_leased_messages(
    stream: GCSFileChangeStream, source: PubSubSource, notifications: FakeNotifications
) -> None:
    for index in range(10):
        upload(notifications, stream, f"{index}.png")

    first = source.pull(max_messages=3, timeout=0)
    second = source.pull(max_messages=3, timeout=0)
    assert (len(first), len(second)) == (3, 1)
    started = time.monotonic()
    assert source.pull(max_messages=3, timeout=0.2) == []
    assert time.monotonic() - started >= 0.2
    assert source.stats().in_flight == stream.max_outstanding

    source.ack([first[0].ack_id])
    assert len(source.pull(max_messages=3, timeout=0)) == 1


def test_a_waiting_pull_wakes_when_an_ack_makes_room(
    stream: GCSFileChangeStream, source: PubSubSource, notifications: FakeNotifications
) -> None:
    for index in range(5):
        upload(notifications, stream, f"{index}.png")
    held = source.pull(max_messages=4, timeout=0)
    got: list[int] = []
    waiter = threading.Thread(
        target=lambda: got.append(len(source.pull(max_messages=1, timeout=5)))
    )
    waiter.start()
    time.sleep(0.1)
    source.ack([held[0].ack_id])
    waiter.join(5)
    assert got == [1]


def test_release_all_hands_every_lease_back(
    stream: GCSFileChangeStream, source: PubSubSource, notifications: FakeNotifications
) -> None:
    for index in range(3):
        upload(notifications, stream, f"{index}.png")
    assert len(source.pull(max_messages=3, timeout=0)) == 3

    assert source.release_all() == 3

    assert source.stats().in_flight == 0
    assert len(source.pull(max_messages=3, timeout=0)) == 3


def test_messages_that_are_not_notifications_are_dead_lettered_unseen(
    stream: GCSFileChangeStream, source: PubSubSource, pubsub: FakePubSub
) -> None:
    pubsub.publish(stream.topic, b"hello", {"origin": "someone else"})
    pubsub.publish(
        stream.topic,
        b"{}",
        {"eventType": "OBJECT_DELETE", "bucketId": "b", "objectId": "gone.png"},
    )

    assert source.pull(max_messages=5, timeout=0) == []
    (letter,) = source.dead_letters()
    assert "no eventType" in letter.error
    assert letter.event.file_path.startswith("(unreadable message")
    assert pubsub.backlog(stream.subscription) == 0


def test_a_missing_subscription_is_a_source_error(
    stream: GCSFileChangeStream, source: PubSubSource
) -> None:
    stream.destroy()
    with pytest.raises(SourceError, match="cannot pull from") as caught:
        source.pull(max_messages=1, timeout=0)
    assert stream.subscription in str(caught.value)
    assert caught.value.__cause__ is not None


def test_nack_of_an_unknown_ack_id_is_ignored(source: PubSubSource) -> None:
    source.nack("never-leased", error="x")
    source.extend(["never-leased"], seconds=30)
    assert source.stats().in_flight == 0
