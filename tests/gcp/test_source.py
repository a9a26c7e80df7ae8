"""The Pub/Sub source against Google's Pub/Sub emulator, fed by fake-gcs-server.

Objects written into the bucket raise OBJECT_FINALIZE messages that fake-gcs-server
publishes itself (no hand-made bridge); the source pulls, acks, nacks, extends and
dead-letters them on the emulator. Faults the emulator cannot produce (a failing
dead-letter publish) use a transport wrapper passed in explicitly.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest
from google.api_core import exceptions as api_exceptions
from google.cloud import pubsub_v1  # type: ignore[attr-defined]

from tests.gcp.conftest import EventingStorage, unique
from tideflow.exceptions import SourceError
from tideflow.io.gcp import GCSBucket, GCSFileChangeStream
from tideflow.io.gcp.google_transport import GooglePubSubTransport
from tideflow.io.gcp.source import PubSubSource
from tideflow.io.gcp.transport import ReceivedMessage
from tideflow.io.strategies import StoredObject
from tideflow.types import DeadLetter, Delivery


@pytest.fixture
def stream(
    eventing_storage: Callable[[str, str], EventingStorage],
) -> Iterator[GCSFileChangeStream]:
    """A bucket on fake-gcs-server whose events reach an applied stream on the emulator."""
    name = unique("src")
    eventing_storage(name, f"{name}-changes")
    bucket = GCSBucket(bucket_name=name).options(force_destroy=True)
    bucket.apply()
    applied = GCSFileChangeStream(
        bucket,
        max_attempts=3,
        lease_seconds=30,
        max_outstanding=4,
        retry_min_seconds=0,
        retry_max_seconds=0,
    )
    applied.apply()
    yield applied
    applied.destroy()


@pytest.fixture
def source(stream: GCSFileChangeStream) -> Iterator[PubSubSource]:
    created = stream.source()
    yield created
    created.close()


def put(stream: GCSFileChangeStream, key: str, data: bytes = b"abc") -> int:
    blob = stream.gcs_bucket.client().blob(key)
    blob.upload_from_string(data, content_type="image/png")
    return int(blob.generation)


def pull_n(source: PubSubSource, count: int, *, timeout: float = 10.0) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += source.pull(max_messages=count - len(got), timeout=0.5)
    return got


def dead_letters(
    stream: GCSFileChangeStream, count: int, *, timeout: float = 10.0
) -> list[DeadLetter]:
    """The dead letters once ``count`` are there (the emulator forwards them lazily)."""
    deadline = time.monotonic() + timeout
    while True:
        found = stream.dead_letter_queue().list()
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_an_object_written_to_the_bucket_is_delivered_and_acked_once(
    stream: GCSFileChangeStream, source: PubSubSource
) -> None:
    generation = put(stream, "a b.png", b"pixels")

    (delivery,) = pull_n(source, 1)
    event = delivery.event
    assert (event.file_path, event.bucket, event.generation, event.size) == (
        "a b.png",
        stream.gcs_bucket.bucket_name,
        generation,
        6,
    )
    assert event.metadata["content_type"] == "image/png"
    assert event.blob == b"pixels"
    assert delivery.attempt == 1

    source.ack([delivery.ack_id])
    assert source.pull(max_messages=5, timeout=1.5) == []
    assert source.stats().done == 1


def test_a_retryable_nack_redelivers_with_the_attempt_counted(
    stream: GCSFileChangeStream, source: PubSubSource
) -> None:
    put(stream, "a.png")
    (first,) = pull_n(source, 1)

    source.nack(first.ack_id, error="model crashed", retryable=True)

    (second,) = pull_n(source, 1)
    assert second.event.event_id == first.event.event_id
    assert second.attempt == 2
    assert stream.dead_letter_queue().list() == []


def test_after_max_attempts_the_event_is_dead_lettered_with_its_error(
    stream: GCSFileChangeStream, source: PubSubSource
) -> None:
    put(stream, "bad.png")
    for attempt in range(1, stream.max_attempts + 1):
        (delivery,) = pull_n(source, 1)
        assert delivery.attempt == attempt
        dead = source.nack(delivery.ack_id, error=f"failure {attempt}", retryable=True)
        assert dead is (attempt == stream.max_attempts)

    assert source.pull(max_messages=1, timeout=1) == []
    (letter,) = stream.dead_letter_queue().list()
    assert letter.event.file_path == "bad.png"
    assert letter.attempts == stream.max_attempts
    assert letter.error == f"failure {stream.max_attempts}"


def test_a_non_retryable_failure_is_dead_lettered_at_once_and_can_be_retried(
    stream: GCSFileChangeStream, source: PubSubSource
) -> None:
    put(stream, "corrupt.png")
    (delivery,) = pull_n(source, 1)

    assert source.nack(
        delivery.ack_id, error="cannot identify image file\nline two", retryable=False
    )

    queue = stream.dead_letter_queue()
    (letter,) = queue.list()
    assert (letter.attempts, letter.error) == (1, "cannot identify image file line two")
    assert queue.count() == 1
    assert queue.retry([letter.id]) == 1
    (again,) = pull_n(source, 1)
    assert again.event.file_path == "corrupt.png"
    source.ack([again.ack_id])
    assert queue.list() == []


def test_pubsub_dead_letters_what_no_consumer_ever_finished(
    stream: GCSFileChangeStream, source: PubSubSource
) -> None:
    # A run process that dies leaves its leases; Pub/Sub's own policy (5 deliveries at
    # least) then moves the message to the dead-letter topic.
    put(stream, "killer.png")
    policy = stream.subscription_config().max_delivery_attempts
    assert policy == 5
    for _ in range(policy):
        assert len(pull_n(source, 1)) == 1
        source.release_all()

    assert source.pull(max_messages=1, timeout=1.5) == []
    (letter,) = dead_letters(stream, 1)
    assert letter.event.file_path == "killer.png"
    assert letter.attempts == policy
    assert "delivery attempts exhausted" in letter.error


def test_flow_control_bounds_leased_messages_and_an_ack_makes_room(
    stream: GCSFileChangeStream, source: PubSubSource
) -> None:
    for index in range(6):
        put(stream, f"{index}.png")

    held = pull_n(source, 4)
    assert len(held) == 4
    assert source.pull(max_messages=3, timeout=1.0) == []
    assert source.stats().in_flight == stream.max_outstanding

    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(len(pull_n(source, 1))))
    waiter.start()
    source.ack([held[0].ack_id])
    waiter.join(15)
    assert got == [1]


def test_release_all_hands_every_lease_back(
    stream: GCSFileChangeStream, source: PubSubSource
) -> None:
    for index in range(3):
        put(stream, f"{index}.png")
    assert len(pull_n(source, 3)) == 3

    assert source.release_all() == 3

    assert source.stats().in_flight == 0
    assert {d.attempt for d in pull_n(source, 3)} == {2}


def test_messages_that_are_not_notifications_are_dead_lettered_unseen(
    stream: GCSFileChangeStream, source: PubSubSource
) -> None:
    pubsub = stream.pubsub()
    pubsub.publish(stream.topic, b"hello", {"origin": "someone else"})
    pubsub.publish(
        stream.topic, b"{}", {"eventType": "OBJECT_DELETE", "bucketId": "b", "objectId": "x"}
    )

    assert source.pull(max_messages=5, timeout=2) == []
    (letter,) = dead_letters(stream, 1)
    assert "no eventType" in letter.error
    assert letter.event.file_path.startswith("(unreadable message")


def test_a_missing_subscription_is_a_source_error(
    stream: GCSFileChangeStream, source: PubSubSource
) -> None:
    stream.destroy()
    with pytest.raises(SourceError, match="cannot pull from") as caught:
        source.pull(max_messages=1, timeout=5)
    assert stream.subscription in str(caught.value)


def test_nack_of_an_unknown_ack_id_is_ignored(source: PubSubSource) -> None:
    assert source.nack("never-leased", error="x") is False
    source.extend(["never-leased"], seconds=30)
    assert source.stats().in_flight == 0


def test_the_subscription_has_a_retry_policy_and_dead_letters_are_kept(
    pubsub_emulator: str, offline_bucket: GCSBucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")  # never called
    stream = GCSFileChangeStream(offline_bucket)
    stream.apply()
    try:
        found = stream.pubsub().get_subscription(stream.subscription)
        assert found is not None
        assert (found.retry_min_seconds, found.retry_max_seconds) == (10, 600)
        letters = stream.pubsub().get_subscription(stream.dead_letter_subscription)
        assert letters is not None
        # 31 days on Google Cloud; the emulator's ceiling is 7.
        assert letters.retention_seconds == 7 * 24 * 3600
        assert stream.plan().action.value == "no change"
    finally:
        stream.destroy()


# -- what the defects were, shown on the emulator ----------------------------------------


class Recording(GooglePubSubTransport):
    """The Google transport, recording pulls and lease changes; publish can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.pull_timeouts: list[float] = []
        self.modacks: list[tuple[int, int]] = []
        self.published: list[int] = []
        self.fail_publish = False
        self.fail_modack = False

    def pull(
        self, subscription: str, *, max_messages: int, timeout: float
    ) -> list[ReceivedMessage]:
        self.pull_timeouts.append(timeout)
        return super().pull(subscription, max_messages=max_messages, timeout=timeout)

    def modify_ack_deadline(
        self, subscription: str, ack_ids: Sequence[str], *, seconds: int
    ) -> None:
        self.modacks.append((len(ack_ids), seconds))
        if self.fail_modack:
            # Not retried by the transport: the call fails as it would after 60 s.
            raise api_exceptions.DeadlineExceeded("modifyAckDeadline timed out")
        super().modify_ack_deadline(subscription, ack_ids, seconds=seconds)

    def publish_all(
        self, topic: str, messages: Sequence[tuple[bytes, dict[str, str]]]
    ) -> list[str]:
        if self.fail_publish:
            raise api_exceptions.ServiceUnavailable("dead-letter topic unreachable")
        self.published.append(len(messages))
        return super().publish_all(topic, messages)


def recording_source(stream: GCSFileChangeStream, **overrides: float) -> PubSubSource:
    source = stream.source()
    wrapped = Recording()
    source.pubsub = wrapped
    for name, value in overrides.items():
        setattr(source, name, value)
    return source


def test_short_pulls_by_the_worker_never_cut_a_pubsub_pull_short(
    stream: GCSFileChangeStream,
) -> None:
    # 4d: the worker asks every 0.5 s; the Pub/Sub call itself runs with its normal
    # deadline on the source's thread, so nothing is stranded and no attempt is spent.
    source = recording_source(stream)
    try:
        for _ in range(4):
            assert source.pull(max_messages=1, timeout=0.5) == []
        put(stream, "late.png")
        (delivery,) = pull_n(source, 1, timeout=5)
        assert delivery.attempt == 1
        assert isinstance(source.pubsub, Recording)
        assert min(source.pubsub.pull_timeouts) >= 60
        source.ack([delivery.ack_id])
    finally:
        source.close()


def test_retryable_failures_come_back_after_growing_delays(
    stream: GCSFileChangeStream,
) -> None:
    # 4c: a nack is not "now" but retry_min_seconds doubled per attempt.
    source = recording_source(stream, retry_min_seconds=1, retry_max_seconds=600)
    assert [source.retry_delay(a) for a in (1, 2, 3, 4)] == [1, 2, 4, 8]
    try:
        put(stream, "flaky.png")
        (first,) = pull_n(source, 1)
        source.nack(first.ack_id, error="BigQuery blip", retryable=True)
        started = time.monotonic()
        assert source.pull(max_messages=1, timeout=0.5) == []
        (second,) = pull_n(source, 1, timeout=10)
        assert time.monotonic() - started >= 0.9
        assert second.attempt == 2
        assert isinstance(source.pubsub, Recording)
        assert (1, 1) in source.pubsub.modacks
        source.ack([second.ack_id])
    finally:
        source.close()


def test_a_frequent_heartbeat_extends_a_lease_once_per_half_lease(
    stream: GCSFileChangeStream,
) -> None:
    # 4k: the worker's heartbeat runs every 2 s; the source calls Pub/Sub only when half
    # of the lease has passed.
    now = [1000.0]
    source = recording_source(stream, clock=lambda: now[0])
    try:
        put(stream, "slow.png")
        (delivery,) = pull_n(source, 1)
        assert isinstance(source.pubsub, Recording)
        source.pubsub.modacks.clear()
        for _ in range(10):  # 20 s of heartbeats on a 30 s lease
            now[0] += 2
            source.extend([delivery.ack_id], seconds=30)
        assert source.pubsub.modacks == [(1, 30)]
        source.ack([delivery.ack_id])
    finally:
        source.close()


def test_a_failed_dead_letter_publish_frees_its_flow_control_slot(
    stream: GCSFileChangeStream,
) -> None:
    # 4i: the message goes back to Pub/Sub and the source keeps pulling.
    source = recording_source(stream)
    try:
        put(stream, "doomed.png")
        (delivery,) = pull_n(source, 1)
        assert isinstance(source.pubsub, Recording)
        source.pubsub.fail_publish = True
        with pytest.raises(SourceError, match="dead letter"):
            source.nack(delivery.ack_id, error="broken", retryable=False)
        assert source.stats().in_flight == 0
        source.pubsub.fail_publish = False
        (again,) = pull_n(source, 1)
        assert again.event.file_path == "doomed.png"
        source.nack(again.ack_id, error="broken", retryable=False)
        assert source.stats().in_flight == 0
    finally:
        source.close()


def test_replay_publishes_the_same_event_again(
    stream: GCSFileChangeStream, source: PubSubSource
) -> None:
    put(stream, "a.png")
    (first,) = pull_n(source, 1)
    source.ack([first.ack_id])
    stored = stream.gcs_bucket.objects().stat("a.png")
    assert stored is not None
    assert stream.replay([stored]) == 1
    (again,) = pull_n(source, 1)
    assert again.event.event_id == first.event.event_id


@pytest.mark.slow
def test_buffered_messages_keep_their_leases_while_the_replicas_are_busy(
    stream: GCSFileChangeStream,
) -> None:
    # G4: two messages pulled, one handed out and worked on for longer than a lease (its
    # heartbeat extends it); the other waits in the buffer. Its lease is renewed too, so
    # no other consumer receives it meanwhile and it comes out as attempt 1.
    stream.lease_seconds = 10
    stream.apply()
    busy, other = stream.source(), stream.source()
    try:
        put(stream, "first.png")
        put(stream, "second.png")
        (working,) = pull_n(busy, 1)
        time.sleep(1)  # the second one reaches busy's buffer before the other consumer asks
        deadline = time.monotonic() + 16
        while time.monotonic() < deadline:
            busy.extend([working.ack_id], seconds=10)  # the worker's heartbeat
            assert other.pull(max_messages=1, timeout=2) == [], "a buffered lease expired"
        busy.ack([working.ack_id])
        (waited,) = pull_n(busy, 1, timeout=2)
        assert waited.attempt == 1
        assert {working.event.file_path, waited.event.file_path} == {"first.png", "second.png"}
        busy.ack([waited.ack_id])
    finally:
        busy.close()
        other.close()


def test_failing_lease_renewals_never_hold_flow_control_slots(
    stream: GCSFileChangeStream, caplog: pytest.LogCaptureFixture
) -> None:
    # G5: with every modifyAckDeadline failing, pulls still hand messages out, acks free
    # their slots and the source keeps pulling (a failed renewal is only logged).
    now = [1000.0]
    source = recording_source(stream, lease_seconds=10, clock=lambda: now[0])
    assert isinstance(source.pubsub, Recording)
    source.pubsub.fail_modack = True
    names = {f"{index}.png" for index in range(stream.max_outstanding + 2)}
    try:
        for name in sorted(names):
            put(stream, name)
        (first,) = pull_n(source, 1)
        now[0] += 6  # past half of the buffered ones' leases: their renewal (failing) is due
        time.sleep(3)
        assert source.pubsub.modacks, "no renewal was tried"
        assert "cannot renew the leases" in caplog.text
        source.ack([first.ack_id])
        seen = {first.event.file_path}
        deadline = time.monotonic() + 30
        while seen != names and time.monotonic() < deadline:
            for delivery in source.pull(max_messages=2, timeout=0.5):
                seen.add(delivery.event.file_path)
                source.ack([delivery.ack_id])
        assert seen == names
        assert source.stats().in_flight == 0
    finally:
        source.close()


def test_dead_letter_scans_pull_with_a_deadline_that_strands_nothing(
    stream: GCSFileChangeStream,
) -> None:
    # G6: a 1 s pull deadline could cut a pull that had leased dead letters.
    assert stream.dead_letter_queue().scan_timeout >= 10


def test_replay_publishes_in_batches_and_every_event_arrives_once(
    stream: GCSFileChangeStream,
) -> None:
    # G9: 250 objects are 3 batches, each waited for once, not 250 round trips.
    pubsub = Recording()
    replayer = GCSFileChangeStream(stream.gcs_bucket, max_outstanding=300, pubsub=pubsub)
    source = replayer.source()
    now = datetime.datetime.now(datetime.UTC)
    stored = [
        StoredObject(
            key=f"replayed/{index}.png",
            version=str(1000 + index),
            size=3,
            updated=now,
            content_type="image/png",
            metadata={},
        )
        for index in range(250)
    ]
    try:
        assert replayer.replay(iter(stored)) == 250
        assert pubsub.published == [100, 100, 50]
        got = pull_n(source, 250, timeout=30)
        assert sorted(d.event.file_path for d in got) == sorted(s.key for s in stored)
        source.ack([d.ack_id for d in got])
        assert source.pull(max_messages=10, timeout=1) == []
    finally:
        source.close()


def test_an_update_changes_only_the_settings_tideflow_manages(
    stream: GCSFileChangeStream,
) -> None:
    # G12: a retention raised by hand on the main subscription stays when apply updates
    # its ack deadline (the config leaves retention to whoever set it).
    subscriber = pubsub_v1.SubscriberClient()
    subscriber.update_subscription(
        request={
            "subscription": {
                "name": stream.subscription,
                "topic": stream.topic,
                "message_retention_duration": {"seconds": 3 * 24 * 3600},
            },
            "update_mask": {"paths": ["message_retention_duration"]},
        }
    )
    stream.lease_seconds = 45
    changed = [c for c in stream.apply().children if c.changes]
    assert [c.primitive_id for c in changed] == [stream.subscription]

    found = stream.pubsub().get_subscription(stream.subscription)
    assert found is not None
    assert found.ack_deadline_seconds == 45
    assert found.retention_seconds == 3 * 24 * 3600
    assert found.max_delivery_attempts == 5
    assert (found.retry_min_seconds, found.retry_max_seconds) == (0, 0)


class PullOnTheWire(GooglePubSubTransport):
    """Pull answers that carry messages take ``delay`` seconds to arrive; closing the
    transport meanwhile loses them, as closing a gRPC channel cancels its calls in flight
    (Pub/Sub has leased those messages to the call: they come back after the ack deadline)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.carrying = threading.Event()
        self.closed = threading.Event()

    def pull(
        self, subscription: str, *, max_messages: int, timeout: float
    ) -> list[ReceivedMessage]:
        received = super().pull(subscription, max_messages=max_messages, timeout=timeout)
        if received:
            self.carrying.set()
            if self.closed.wait(self.delay):
                raise api_exceptions.Cancelled("the channel was closed under the call")
        return received

    def close(self) -> None:
        self.closed.set()
        super().close()


def test_closing_hands_back_what_the_pull_in_flight_brings(stream: GCSFileChangeStream) -> None:
    # SIGTERM on the gcp stack: the source closed its channel under its background pull,
    # and what Pub/Sub had leased to that pull came back only after the ack deadline. Now
    # close waits for the pull and hands its messages back at once.
    closing, other = stream.source(), stream.source()
    wire = PullOnTheWire(delay=1.0)
    closing.pubsub = wire
    try:
        assert closing.pull(max_messages=1, timeout=0) == []  # starts the background pull
        put(stream, "late.png")
        assert wire.carrying.wait(10), "the message never reached the pull"
        closed_at = time.monotonic()
        closing.close()
        (delivery,) = pull_n(other, 1, timeout=5)
        assert delivery.event.file_path == "late.png"
        assert time.monotonic() - closed_at < stream.lease_seconds / 4
        other.ack([delivery.ack_id])
    finally:
        closing.close()
        other.close()
