"""S3Bucket and S3FileChangeStream against moto's server: plan, apply twice, destroy."""

from __future__ import annotations

import io
import json
import time

import boto3
import pytest
from botocore.exceptions import ParamValidationError

from tideflow.exceptions import (
    ConfigError,
    ObjectNotFoundError,
    ObjectSupersededError,
    PrimitiveError,
)
from tideflow.io.aws import S3Bucket, S3FileChangeStream
from tideflow.io.primitive import PlanAction


def _put(bucket: S3Bucket, key: str, data: bytes) -> str:
    return bucket.objects().put(key, io.BytesIO(data), content_type="image/jpeg").version


def test_bucket_lifecycle_and_objects(moto_server: str, names: dict[str, str]) -> None:
    bucket = S3Bucket(names["bucket"])
    assert bucket.plan().action is PlanAction.CREATE
    assert bucket.apply().action is PlanAction.CREATE
    assert bucket.apply().action is PlanAction.NO_CHANGE
    # client() is a boto3 s3.Bucket, as BuildFlow's aws tutorial uses it.
    bucket.client().put_object(Key="tutorial.jpg", Body=b"tutorial")
    assert bucket.read_bytes("tutorial.jpg") == b"tutorial"

    store = bucket.objects()
    stored = store.put(
        "uploads/a.jpg", io.BytesIO(b"one"), content_type="image/jpeg", metadata={"name": "a"}
    )
    stat = store.stat("uploads/a.jpg")
    assert stat is not None and stat.version == stored.version and stat.size == 3
    assert stat.content_type == "image/jpeg" and stat.metadata == {"name": "a"}
    assert store.stat("uploads/none.jpg") is None
    assert [o.key for o in store.list(prefix="uploads/")] == ["uploads/a.jpg"]
    assert store.get("uploads/a.jpg", version=stored.version) == b"one"
    newer = _put(bucket, "uploads/a.jpg", b"two")
    # Unversioned: an overwritten version fails the same way on every stack.
    with pytest.raises(ObjectSupersededError, match=newer):
        store.get("uploads/a.jpg", version=stored.version)
    with pytest.raises(ObjectNotFoundError):
        store.get("uploads/none.jpg")
    assert store.stat("uploads/a.jpg", version=stored.version) is None
    current = store.stat("uploads/a.jpg", version=newer)
    assert current is not None and current.metadata == {}

    assert bucket.plan_destroy().detail == "only if empty"
    with pytest.raises(PrimitiveError, match="force_destroy"):
        bucket.destroy()
    bucket.options(force_destroy=True)
    assert bucket.destroy().action is PlanAction.DELETE
    assert bucket.destroy().action is PlanAction.NO_CHANGE
    with pytest.raises(ConfigError):
        bucket.options(force_destroy="yes")


def test_versioned_bucket_reads_old_versions(moto_server: str, names: dict[str, str]) -> None:
    bucket = S3Bucket(names["bucket"]).options(
        versioning=True, force_destroy=True, versioning_wait_seconds=1
    )
    assert "versioning on, then wait" in bucket.plan().detail
    began = time.monotonic()
    assert bucket.apply().action is PlanAction.CREATE
    # As S3 asks, apply waits after turning versioning on (15 min by default).
    assert time.monotonic() - began >= 1
    assert bucket.plan().action is PlanAction.NO_CHANGE
    first = _put(bucket, "k.jpg", b"first")
    second = _put(bucket, "k.jpg", b"second")
    assert first != second
    assert bucket.read_bytes("k.jpg", version=first) == b"first"
    assert bucket.read_bytes("k.jpg", version=second) == b"second"
    assert [o.version for o in bucket.objects().list()] == [second]
    bucket.destroy()  # every version goes too
    assert not bucket.exists()


def test_bad_names() -> None:
    with pytest.raises(PrimitiveError, match="bucket name"):
        S3Bucket("Bad_Name")
    bucket = S3Bucket("fine-name")
    with pytest.raises(ConfigError, match="queue name"):
        S3FileChangeStream(bucket, queue_name="has.dot")
    with pytest.raises(ConfigError, match="max_attempts"):
        S3FileChangeStream(bucket).options(max_attempts=0)
    with pytest.raises(ConfigError, match="lease_seconds"):
        S3FileChangeStream(bucket, lease_seconds=5)


def test_stream_plan_apply_twice_destroy(moto_server: str, names: dict[str, str]) -> None:
    bucket = S3Bucket(names["bucket"]).options(force_destroy=True)
    stream = S3FileChangeStream(s3_bucket=bucket, queue_name=names["queue"], prefix="uploads/")
    bucket.apply()
    s3 = boto3.client("s3")
    sqs = boto3.client("sqs")
    # Someone else's notification on the same bucket survives apply and destroy.
    other_queue = sqs.create_queue(QueueName=f"{names['queue']}-other")["QueueUrl"]
    other_arn = sqs.get_queue_attributes(QueueUrl=other_queue, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket.bucket_name,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"Id": "theirs", "QueueArn": other_arn, "Events": ["s3:ObjectRemoved:*"]}
            ]
        },
    )

    plan = stream.plan()
    assert plan.action is PlanAction.CREATE
    assert [c.kind for c in plan.children] == ["SQSQueue", "SQSQueue", "S3Notification"]
    assert stream.apply().action is PlanAction.CREATE
    again = stream.apply()
    assert again.action is PlanAction.NO_CHANGE and not again.changes

    url = sqs.get_queue_url(QueueName=names["queue"])["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{names['queue']}-dlq")
    # One receive more than max_attempts (5): the consumer records the failure on it.
    assert int(redrive["maxReceiveCount"]) == 6
    assert attributes["VisibilityTimeout"] == "60"
    assert attributes["MessageRetentionPeriod"] == "1209600"  # 14 days, not SQS's 4
    statement = json.loads(attributes["Policy"])["Statement"][0]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == (
        f"arn:aws:s3:::{bucket.bucket_name}"
    )
    config = s3.get_bucket_notification_configuration(Bucket=bucket.bucket_name)
    by_id = {q["Id"]: q for q in config["QueueConfigurations"]}
    assert set(by_id) == {"theirs", stream.notification_id}
    mine = by_id[stream.notification_id]
    assert mine["Events"] == ["s3:ObjectCreated:*"]
    assert mine["Filter"]["Key"]["FilterRules"][0]["Value"] == "uploads/"

    # A queue made with SQS's default retention (by an earlier release) is updated.
    # (The policy is sent again because moto drops a queue's policy on any attribute change.)
    sqs.set_queue_attributes(
        QueueUrl=url,
        Attributes={"MessageRetentionPeriod": "345600", "Policy": attributes["Policy"]},
    )
    stale = stream.plan()
    assert [c.action for c in stale.children][1] is PlanAction.UPDATE
    assert stale.children[1].detail == "set MessageRetentionPeriod"
    stream.apply()
    retention = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MessageRetentionPeriod"])
    assert retention["Attributes"]["MessageRetentionPeriod"] == "1209600"

    # A changed option is an update of just that part.
    stream.options(lease_seconds=120)
    changed = stream.plan()
    assert changed.action is PlanAction.UPDATE
    assert [c.action for c in changed.children] == [
        PlanAction.NO_CHANGE,
        PlanAction.UPDATE,
        PlanAction.NO_CHANGE,
    ]
    stream.apply()
    assert not stream.plan().changes

    assert stream.plan_destroy().action is PlanAction.DELETE
    assert stream.destroy().action is PlanAction.DELETE
    assert stream.destroy().action is PlanAction.NO_CHANGE
    config = s3.get_bucket_notification_configuration(Bucket=bucket.bucket_name)
    assert [q["Id"] for q in config["QueueConfigurations"]] == ["theirs"]
    urls = sqs.list_queues(QueueNamePrefix=names["queue"]).get("QueueUrls", [])
    assert [u.rsplit("/", 1)[1] for u in urls] == [f"{names['queue']}-other"]
    bucket.destroy()
    assert stream.plan_destroy().action is PlanAction.NO_CHANGE


def test_writing_a_key_twice_supersedes_the_first_version(
    moto_server: str, names: dict[str, str]
) -> None:
    """The sequence of tests/gcp/test_superseded.py (local and gcp), on S3."""
    bucket = S3Bucket(names["bucket"]).options(force_destroy=True)
    bucket.apply()
    objects = bucket.objects()
    first = objects.put("k.png", io.BytesIO(b"first"), content_type="image/png")
    second = objects.put("k.png", io.BytesIO(b"second"), content_type="image/png")
    assert first.version != second.version
    with pytest.raises(ObjectSupersededError, match=f"superseded by version {second.version}"):
        bucket.read_bytes("k.png", version=first.version)
    assert bucket.read_bytes("k.png", version=second.version) == b"second"
    stat = objects.stat("k.png")
    assert stat is not None and (stat.version, stat.size) == (second.version, 6)
    assert [o.key for o in objects.list()] == ["k.png"]
    bucket.destroy()


@pytest.mark.parametrize(
    "name", ["café.jpg", "写真.jpg", "🐱 cat.png", "Screenshot 9.41\u202fAM.png", "=?x?B?y?=.jpg"]
)
def test_metadata_that_is_not_ascii(moto_server: str, names: dict[str, str], name: str) -> None:
    """botocore refuses non-ASCII metadata before sending it; S3 takes RFC 2047 words."""
    bucket = S3Bucket(names["bucket"]).options(force_destroy=True)
    bucket.apply()
    raw = boto3.client("s3")
    if not name.isascii():  # why the words are needed
        with pytest.raises(ParamValidationError, match="ASCII"):
            raw.put_object(Bucket=bucket.bucket_name, Key="k", Body=b"x", Metadata={"name": name})
    store = bucket.objects()
    stored = store.put(
        "k.jpg", io.BytesIO(b"x"), content_type="image/jpeg", metadata={"name": name}
    )
    assert stored.metadata == {"name": name}
    stat = store.stat("k.jpg")
    assert stat is not None and stat.metadata == {"name": name}
    # Stored as encoded words (an ASCII value that looks like one is encoded too).
    sent = raw.head_object(Bucket=bucket.bucket_name, Key="k.jpg")["Metadata"]["name"]
    assert sent.isascii() and sent.startswith("=?UTF-8?B?")
    bucket.destroy()
