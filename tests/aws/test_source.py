"""The SQS source's delivery rules, against moto's server (real S3 -> SQS notifications)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tideflow.io.aws import S3Bucket, S3FileChangeEvent, S3FileChangeStream, SQSSource
from tideflow.io.aws.source import ATTEMPTS_ATTRIBUTE, ERROR_ATTRIBUTE
from tideflow.types import Delivery

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def stream(moto_server: str, names: dict[str, str]) -> Iterator[S3FileChangeStream]:
    bucket = S3Bucket(names["bucket"]).options(force_destroy=True)
    stream = S3FileChangeStream(
        s3_bucket=bucket, queue_name=names["queue"], max_attempts=3, retry_delay_seconds=1
    )
    bucket.apply()
    stream.apply()
    yield stream
    stream.destroy()
    bucket.destroy()


def _put(stream: S3FileChangeStream, key: str, data: bytes = b"data") -> str:
    return stream.s3_bucket.objects().put(key, io.BytesIO(data), content_type="image/jpeg").version


def _pull(source: SQSSource, wanted: int = 1, timeout: float = 10) -> list[Delivery]:
    found: list[Delivery] = []
    deadline = time.monotonic() + timeout
    while len(found) < wanted and time.monotonic() < deadline:
        found.extend(source.pull(max_messages=10, timeout=1))
    return found


def _queue_url(stream: S3FileChangeStream, dlq: bool = False) -> str:
    name = stream.dead_letter_queue_name if dlq else stream.queue_name
    return str(boto3.client("sqs").get_queue_url(QueueName=name)["QueueUrl"])


def _count(stream: S3FileChangeStream, dlq: bool = False) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=_queue_url(stream, dlq),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


class Spy:
    """Records the calls a source makes to its queue's SQS client."""

    def __init__(self, source: SQSSource) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        real = source.queue.sqs()
        spy = self

        class Client:
            def __getattr__(self, name: str) -> Any:
                method = getattr(real, name)

                def call(**kwargs: Any) -> Any:
                    spy.calls.append((name, kwargs))
                    return method(**kwargs)

                return call

        source.queue.sqs = lambda: Client()  # type: ignore[method-assign]

    def named(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for called, kwargs in self.calls if called == name]


def test_event_from_s3_decoded_key_and_delete_after_ack(stream: S3FileChangeStream) -> None:
    source = stream.source()
    version = _put(stream, "uploads/a b+c.jpg", b"cat")
    (delivery,) = _pull(source)  # the s3:TestEvent S3 sent first was skipped
    event = delivery.event
    assert event.file_path == "uploads/a b+c.jpg"
    assert event.version == version  # the upload knew the event's version
    assert event.blob == b"cat"
    # Like Cloud Storage's notifications: the object's content type and user metadata.
    assert event.metadata["content_type"] == "image/jpeg"
    assert event.metadata["event_name"] == "ObjectCreated:Put"
    assert delivery.attempt == 1
    # Not acked: handed back (as after a crash), it comes again with the same identity.
    assert source.release_all() == 1
    (again,) = _pull(source)
    assert again.event.event_id == event.event_id and again.attempt == 2
    assert _count(stream) == 1  # never deleted before the sink committed
    source.ack([again.ack_id])
    assert _count(stream) == 0 and _count(stream, dlq=True) == 0
    assert source.stats().done is not None


def test_stats_tell_the_backlog_apart_from_the_events_in_flight(
    stream: S3FileChangeStream,
) -> None:
    source = stream.source()
    for n in range(3):
        _put(stream, f"uploads/{n}.jpg")
    assert len(_pull(source, 3)) == 3
    stats = source.stats()
    assert (stats.pending, stats.in_flight) == (0, 3)
    source.release_all()
    stats = source.stats()
    assert (stats.pending, stats.in_flight) == (3, 0)  # the backlog autoscalers read
    # SQS has no attribute for it (CloudWatch's ApproximateAgeOfOldestMessage is a metric).
    assert stats.oldest_pending_seconds is None


def test_replay_sends_the_same_event_again(stream: S3FileChangeStream) -> None:
    source = stream.source()
    _put(stream, "uploads/a b+c.jpg", b"cat")
    (first,) = _pull(source)
    source.ack([first.ack_id])
    listed = list(stream.s3_bucket.objects().list(prefix="uploads/"))
    assert stream.replay(listed) == 1
    (again,) = _pull(source)
    assert again.event.event_id == first.event.event_id
    assert again.event.file_path == "uploads/a b+c.jpg" and again.event.blob == b"cat"
    source.ack([again.ack_id])
    assert _count(stream) == 0


def test_idle_pulls_share_one_20s_long_poll(stream: S3FileChangeStream) -> None:
    source = stream.source()
    spy = Spy(source)
    _pull(source, wanted=99, timeout=1)  # the s3:TestEvent S3 sent first is skipped
    started = time.monotonic()
    while time.monotonic() - started < 4:
        began = time.monotonic()
        assert source.pull(max_messages=10, timeout=0.5) == []
        assert time.monotonic() - began < 1.5  # pull keeps its own timeout: a worker can stop
    receives = spy.named("receive_message")
    assert all(r["WaitTimeSeconds"] == 20 for r in receives)
    assert len(receives) <= 2  # one long poll in flight, not one request a second
    _put(stream, "uploads/wake.jpg")  # answers the long poll in flight at once
    began = time.monotonic()
    (delivery,) = _pull(source, timeout=10)
    assert time.monotonic() - began < 3
    assert spy.named("receive_message")[-1]["MaxNumberOfMessages"] == 10
    spy.calls.clear()
    source.ack([delivery.ack_id])
    (delete,) = spy.named("delete_message_batch")
    assert len(delete["Entries"]) == 1 and _count(stream) == 0


def test_a_message_received_after_close_is_handed_back(stream: S3FileChangeStream) -> None:
    closing = stream.source()
    _pull(closing, wanted=99, timeout=1)  # drains the test event; a long poll stays in flight
    assert closing.pull(max_messages=10, timeout=0.2) == []
    closing.close()
    _put(stream, "uploads/late.jpg")  # the closed source's poll in flight receives it
    began = time.monotonic()
    other = stream.source()
    (delivery,) = _pull(other, timeout=15)
    # Handed back at once, not after the 60 s visibility timeout of that receive.
    assert time.monotonic() - began < 10
    assert delivery.event.file_path == "uploads/late.jpg" and delivery.attempt == 2
    other.ack([delivery.ack_id])
    other.close()


def test_acks_delete_ten_messages_per_call(stream: S3FileChangeStream) -> None:
    source = stream.source()
    for n in range(12):
        _put(stream, f"uploads/many-{n}.jpg")
    deliveries = _pull(source, wanted=12, timeout=20)
    assert len(deliveries) == 12
    spy = Spy(source)
    done = source.stats().done or 0  # the s3:TestEvent was deleted too
    source.ack([d.ack_id for d in deliveries])
    assert [len(d["Entries"]) for d in spy.named("delete_message_batch")] == [10, 2]
    assert _count(stream) == 0 and source.stats().done == done + 12


def test_extend_keeps_the_message_leased(stream: S3FileChangeStream) -> None:
    source = stream.source()
    source.lease_seconds = 2
    _put(stream, "uploads/slow.jpg")
    (delivery,) = _pull(source)
    spy = Spy(source)
    source.extend([delivery.ack_id], seconds=30)
    (change,) = spy.named("change_message_visibility_batch")
    assert change["Entries"][0]["VisibilityTimeout"] == 30
    time.sleep(2.5)
    other = stream.source()
    assert other.pull(max_messages=10, timeout=1) == []  # still leased
    source.ack([delivery.ack_id])


def test_extends_are_throttled_and_stay_within_12_hours(stream: S3FileChangeStream) -> None:
    now = [0.0]
    source = stream.source()
    source.clock = lambda: now[0]
    _put(stream, "uploads/long.jpg")
    (delivery,) = _pull(source)
    spy = Spy(source)
    source.extend([delivery.ack_id], seconds=60)
    assert spy.named("change_message_visibility_batch") == []  # the lease is still fresh
    now[0] = 31  # half of the 60 s lease gone
    source.extend([delivery.ack_id], seconds=60)
    (renewed,) = spy.named("change_message_visibility_batch")
    assert renewed["Entries"][0]["VisibilityTimeout"] == 60
    # SQS refuses a visibility ending more than 12 hours after the receive.
    now[0] = 30_000
    source.extend([delivery.ack_id], seconds=43_200)
    capped = spy.named("change_message_visibility_batch")[-1]
    assert capped["Entries"][0]["VisibilityTimeout"] == 43_140 - 30_000
    # Held 11 hours (a warehouse outage): handed back rather than extended past the limit.
    now[0] = 39_600
    source.extend([delivery.ack_id], seconds=60)
    assert spy.named("change_message_visibility_batch")[-1]["Entries"][0]["VisibilityTimeout"] == 0
    (again,) = _pull(stream.source())
    assert again.event.event_id == delivery.event.event_id and again.attempt == 2
    source.ack([delivery.ack_id])  # settled late by the first holder: ignored
    assert spy.named("delete_message_batch") == []


def test_retried_events_back_off_over_minutes_by_default(stream: S3FileChangeStream) -> None:
    source = S3FileChangeStream(stream.s3_bucket, queue_name=stream.queue_name).source()
    _put(stream, "uploads/flaky.jpg")
    (delivery,) = _pull(source)
    spy = Spy(source)
    assert source.nack(delivery.ack_id, error="flaky", retryable=True) is False
    (back,) = spy.named("change_message_visibility_batch")
    assert back["Entries"][0]["VisibilityTimeout"] == 10  # then 20, 40, 80 s


def test_retryable_nack_comes_back_after_a_growing_delay(stream: S3FileChangeStream) -> None:
    source = stream.source()
    _put(stream, "uploads/flaky.jpg")
    spy = Spy(source)
    delays = []
    for attempt in (1, 2):
        (delivery,) = _pull(source)
        assert delivery.attempt == attempt
        assert source.nack(delivery.ack_id, error="flaky", retryable=True) is False
        delays.append(spy.named("change_message_visibility_batch")[-1]["Entries"][0])
    assert [d["VisibilityTimeout"] for d in delays] == [1, 2]
    # The third receive reaches max_attempts: its nack dead-letters it with the reason.
    (delivery,) = _pull(source)
    assert delivery.attempt == 3
    assert source.nack(delivery.ack_id, error="still flaky", retryable=True) is True
    assert _count(stream) == 0
    (letter,) = stream.dead_letter_queue().list()
    assert letter.error == "still flaky" and letter.attempts == 3
    assert letter.event.file_path == "uploads/flaky.jpg"


def test_non_retryable_goes_to_the_dlq_at_once(stream: S3FileChangeStream) -> None:
    source = stream.source()
    _put(stream, "uploads/text.jpg", b"not an image")
    (delivery,) = _pull(source)
    assert source.nack(delivery.ack_id, error="not an image: text", retryable=False) is True
    assert _count(stream) == 0
    sqs = boto3.client("sqs")
    message = sqs.receive_message(
        QueueUrl=_queue_url(stream, dlq=True), MessageAttributeNames=["All"], WaitTimeSeconds=1
    )["Messages"][0]
    assert message["MessageAttributes"][ERROR_ATTRIBUTE]["StringValue"] == "not an image: text"
    assert message["MessageAttributes"][ATTEMPTS_ATTRIBUTE]["StringValue"] == "1"
    record = json.loads(message["Body"])["Records"][0]
    assert record["s3"]["object"]["key"] == "uploads%2Ftext.jpg"  # the record as S3 sent it
    sqs.change_message_visibility(
        QueueUrl=_queue_url(stream, dlq=True),
        ReceiptHandle=message["ReceiptHandle"],
        VisibilityTimeout=0,
    )

    dlq = stream.dead_letter_queue()
    assert dlq.count() == 1
    (letter,) = dlq.list()
    assert letter.event.version == delivery.event.version
    assert dlq.retry([letter.id]) == 1
    assert dlq.count() == 0
    (back,) = _pull(source)
    assert back.event.event_id == delivery.event.event_id
    source.ack([back.ack_id])


def test_crashing_consumers_are_dead_lettered_by_the_redrive_policy(
    stream: S3FileChangeStream,
) -> None:
    source = stream.source()
    source.lease_seconds = 1
    _put(stream, "uploads/crash.jpg")
    # Received, never settled: the replica "crashed". The 4th receive (max_attempts + 1)
    # is the one on which the runtime records the failure; if even that one is never
    # settled, SQS's redrive policy moves the message.
    for attempt in (1, 2, 3, 4):
        (delivery,) = _pull(source)
        assert delivery.attempt == attempt
        time.sleep(1.1)
    assert _pull(source, timeout=2) == []
    (letter,) = stream.dead_letter_queue().list()
    assert "attempts exhausted" in letter.error
    assert letter.event.file_path == "uploads/crash.jpg"


def test_several_records_test_events_and_other_prefixes(stream: S3FileChangeStream) -> None:
    source = stream.source()
    source.prefix = "uploads/"
    _pull(source, wanted=99, timeout=0.1)
    sqs = boto3.client("sqs")
    body = json.loads((FIXTURES / "s3_put_event.json").read_text())
    outside = json.loads(json.dumps(body["Records"][1]))
    outside["s3"]["object"]["key"] = "elsewhere/x.jpg"
    body["Records"].append(outside)
    sqs.send_message(
        QueueUrl=_queue_url(stream), MessageBody=(FIXTURES / "s3_test_event.json").read_text()
    )
    sqs.send_message(QueueUrl=_queue_url(stream), MessageBody=json.dumps(body))
    deliveries = _pull(source, wanted=2)
    # Of four records: two creations under the prefix; the removal and the outsider skipped.
    assert [d.event.file_path for d in deliveries] == [
        "uploads/Happy Face+1.jpg",
        "uploads/big.jpg",
    ]
    first, second = deliveries
    source.ack([first.ack_id])
    assert source.nack(second.ack_id, error="busy", retryable=True) is False
    assert _count(stream) == 1  # one record failed: the whole message comes back
    again = _pull(source, wanted=2)
    assert sorted(d.event.event_id for d in again) == sorted(d.event.event_id for d in deliveries)
    source.ack([d.ack_id for d in again])
    assert _count(stream) == 0

    sqs.send_message(QueueUrl=_queue_url(stream), MessageBody="garbage")
    assert _pull(source, timeout=2) == []
    (letter,) = stream.dead_letter_queue().list()
    assert "not JSON" in letter.error


def test_versioned_bucket_events_carry_version_ids(moto_server: str, names: dict[str, str]) -> None:
    """Real S3 puts ``versionId`` in records of a versioned bucket; moto's server omits it, so
    the records are sent as S3 would, for objects really stored with versions."""
    # moto turns versioning on at once: no need to wait as on S3.
    bucket = S3Bucket(names["bucket"]).options(
        force_destroy=True, versioning=True, versioning_wait_seconds=0
    )
    stream = S3FileChangeStream(s3_bucket=bucket, queue_name=names["queue"])
    bucket.apply()
    stream.apply()
    try:
        source = stream.source()
        _pull(source, wanted=99, timeout=0.1)
        puts = [
            boto3.client("s3").put_object(Bucket=bucket.bucket_name, Key="uploads/k 1.jpg", Body=b)
            for b in (b"first", b"second")
        ]
        _pull(source, wanted=99, timeout=2)  # drop moto's records (no versionId)
        template = json.loads((FIXTURES / "s3_put_event.json").read_text())["Records"][0]
        records = []
        for put in puts:
            record = json.loads(json.dumps(template))
            record["s3"]["bucket"]["name"] = bucket.bucket_name
            record["s3"]["object"].update(
                key="uploads/k+1.jpg", eTag=put["ETag"].strip('"'), versionId=put["VersionId"]
            )
            records.append(record)
        boto3.client("sqs").send_message(
            QueueUrl=_queue_url(stream), MessageBody=json.dumps({"Records": records})
        )
        deliveries = _pull(source, wanted=2)
        events = [d.event for d in deliveries]
        assert [e.version for e in events] == [p["VersionId"] for p in puts]
        assert all(isinstance(e, S3FileChangeEvent) and e.version_id == e.version for e in events)
        # Each event reads its own version, even after the key was overwritten.
        assert [e.blob for e in events] == [b"first", b"second"]
        source.ack([d.ack_id for d in deliveries])
        # A replay sends the current version's event: the same identity as S3's own.
        assert stream.replay(bucket.objects().list(prefix="uploads/")) == 1
        (replayed,) = _pull(source)
        assert replayed.event.event_id == events[1].event_id
        assert replayed.event.blob == b"second"
        source.ack([replayed.ack_id])
    finally:
        stream.destroy()
        bucket.destroy()
