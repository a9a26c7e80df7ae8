"""What real AWS answers and moto does not, injected at the transport (``tests/http_proxy.py``
in front of moto's server), plus the S3 behaviours moto does reproduce (object lock,
regions): apply and destroy keep a bucket's other notification settings, S3's check of a
new queue policy is waited out, other partitions and regions, refused deletes, SSE-KMS
and SSE-C answers, thread-local bucket resources."""

from __future__ import annotations

import datetime
import io
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.app.support import make_app
from tests.aws.support import aws_settings
from tests.http_proxy import Forward, HttpProxy, Reply, Request
from tideflow.exceptions import PrimitiveError
from tideflow.io.aws import S3Bucket, S3FileChangeStream, clients, stream_parts
from tideflow.io.aws.settings import default_region

ACCOUNT = "123456789012"  # moto's
THEIR_TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:their-topic"
THEIR_FUNCTION = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:their-function"
# S3 says this while a queue policy that allows it to send is still spreading.
UNVALIDATED = Reply(
    400,
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidArgument</Code>'
    b"<Message>Unable to validate the following destination configurations</Message>"
    b"<ArgumentName1>arn:aws:sqs:us-east-1:123456789012:QUEUE</ArgumentName1>"
    b"<ArgumentValue1>Permissions on the destination queue do not allow S3 to publish "
    b"notifications from this bucket</ArgumentValue1><RequestId>8J4TZ7</RequestId>"
    b"<HostId>h0st</HostId></Error>",
    "application/xml",
)


def _is_notification(method: str) -> Callable[[Request], bool]:
    """Get/PutBucketNotificationConfiguration: ``?notification`` on the bucket."""

    def matches(request: Request) -> bool:
        query = urllib.parse.urlsplit(request.path).query
        return request.method == method and query.split("&")[0].rstrip("=") == "notification"

    return matches


def _answer(
    proxy: HttpProxy,
    matches: Callable[[Request], bool],
    reply: Reply | Callable[[Request], Reply],
    *,
    times: int | None = None,
) -> None:
    """Make ``proxy`` reply to the next ``times`` matching requests (every one when None)."""
    left = [times]

    def rule(request: Request, forward: Forward) -> Reply | None:
        if left[0] == 0 or not matches(request):
            return None
        if left[0] is not None:
            left[0] -= 1
        return reply(request) if callable(reply) else reply

    proxy.rules.append(rule)


def _seen(proxy: HttpProxy, matches: Callable[[Request], bool]) -> list[Request]:
    return [r for r in list(proxy.requests) if matches(r)]


@pytest.fixture
def proxy(moto_server: str) -> Iterator[HttpProxy]:
    proxy = HttpProxy(moto_server)
    yield proxy
    proxy.close()


@pytest.fixture
def through_proxy(proxy: HttpProxy, monkeypatch: pytest.MonkeyPatch) -> HttpProxy:
    """This process's S3 and STS calls go through the proxy (fresh boto3 clients)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", proxy.url)
    monkeypatch.setattr(clients, "_clients", {})
    return proxy


def _configuration_xml(*, queue_arn: str, queue_id: str | None) -> bytes:
    """A bucket's notification configuration as real S3 returns it: EventBridge on (an
    empty element), someone's topic and function, and tideflow's queue when ``queue_id``."""
    ours = (
        f"<QueueConfiguration><Id>{queue_id}</Id><Queue>{queue_arn}</Queue>"
        "<Event>s3:ObjectCreated:*</Event></QueueConfiguration>"
        if queue_id
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<TopicConfiguration><Id>their-topic</Id><Topic>{THEIR_TOPIC}</Topic>"
        "<Event>s3:ObjectRemoved:*</Event></TopicConfiguration>"
        f"{ours}"
        "<CloudFunctionConfiguration><Id>their-function</Id>"
        f"<CloudFunction>{THEIR_FUNCTION}</CloudFunction>"
        "<Event>s3:ObjectCreated:Copy</Event></CloudFunctionConfiguration>"
        "<EventBridgeConfiguration></EventBridgeConfiguration>"
        "</NotificationConfiguration>"
    ).encode()


def test_apply_and_destroy_keep_the_bucket_s_other_notifications(
    proxy: HttpProxy, tmp_path: Path
) -> None:
    """``tideflow apply``/``destroy``: S3 refuses the notification twice while the new queue
    policy spreads (apply tries again), and both write back EventBridge, the topic and the
    function exactly as they read them."""
    settings = aws_settings(AWS_ENDPOINT_URL_S3=proxy.url)
    bucket, queue = settings["S3_BUCKET_NAME"], settings["SQS_QUEUE_NAME"]
    queue_arn = f"arn:aws:sqs:us-east-1:{ACCOUNT}:{queue}"
    applied = {"done": False}

    def configuration(_request: Request) -> Reply:
        mine = f"tideflow-{queue}" if applied["done"] else None
        return Reply(200, _configuration_xml(queue_arn=queue_arn, queue_id=mine), "application/xml")

    _answer(proxy, _is_notification("GET"), configuration)
    _answer(proxy, _is_notification("PUT"), UNVALIDATED, times=2)
    app = make_app(tmp_path / "home", **settings)
    result = app.cli("apply", "--yes", timeout=180)
    assert result.returncode == 0, result.stderr
    puts = _seen(proxy, _is_notification("PUT"))
    assert len(puts) == 3  # two refusals, then the one that moto took
    sent = puts[-1].body.decode()
    for kept in ("<EventBridgeConfiguration", THEIR_TOPIC, THEIR_FUNCTION, "their-function"):
        assert kept in sent, sent
    assert f"<Id>tideflow-{queue}</Id>" in sent and queue_arn in sent
    stored = boto3.client("s3").get_bucket_notification_configuration(Bucket=bucket)
    assert [q["Id"] for q in stored["QueueConfigurations"]] == [f"tideflow-{queue}"]

    applied["done"] = True
    app.env["S3_FORCE_DESTROY"] = "true"
    result = app.cli("destroy", "--yes", timeout=180)
    assert result.returncode == 0, result.stderr
    sent = _seen(proxy, _is_notification("PUT"))[-1].body.decode()
    for kept in ("<EventBridgeConfiguration", THEIR_TOPIC, THEIR_FUNCTION):
        assert kept in sent, sent
    assert f"tideflow-{queue}" not in sent


def test_a_destination_s3_never_validates_is_named(
    through_proxy: HttpProxy, names: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream_parts, "NOTIFICATION_RETRY_SECONDS", 3)
    bucket = S3Bucket(names["bucket"]).options(force_destroy=True)
    stream = S3FileChangeStream(bucket, queue_name=names["queue"])
    bucket.apply()
    _answer(through_proxy, _is_notification("PUT"), UNVALIDATED)
    with pytest.raises(PrimitiveError) as caught:
        stream.apply()
    message = str(caught.value)
    assert "Permissions on the destination queue do not allow S3" in message
    assert "another destination of the bucket, fix or remove it" in message
    assert len(_seen(through_proxy, _is_notification("PUT"))) >= 2  # tried again first
    stream.destroy()
    bucket.destroy()


def test_a_dead_letter_queue_sqs_does_not_see_yet_is_waited_for(
    proxy: HttpProxy, names: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after CreateQueue, SQS can refuse a redrive policy naming the new queue."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", proxy.url)
    monkeypatch.setattr(clients, "_clients", {})
    unseen = (
        b'{"__type": "com.amazonaws.sqs#InvalidAttributeValue", "message": "Value {...} for '
        b'parameter RedrivePolicy is invalid. Reason: Dead letter target does not exist."}'
    )

    def creates_the_queue(request: Request) -> bool:
        return b"RedrivePolicy" in request.body and b'"QueueName"' in request.body

    _answer(proxy, creates_the_queue, Reply(400, unseen, "application/x-amz-json-1.0"), times=1)
    bucket = S3Bucket(names["bucket"]).options(force_destroy=True)
    stream = S3FileChangeStream(bucket, queue_name=names["queue"])
    bucket.apply()
    stream.apply()
    assert len(_seen(proxy, creates_the_queue)) == 2  # refused once, then created
    assert not stream.plan().changes
    stream.destroy()
    bucket.destroy()


def test_arns_follow_the_caller_s_partition(moto_server: str, names: dict[str, str]) -> None:
    """In China (aws-cn) every ARN starts with ``arn:aws-cn:``, which moto follows too: its
    caller identity, queues and notification checks in cn-north-1 are all aws-cn."""
    bucket = S3Bucket(names["bucket"], region="cn-north-1").options(force_destroy=True)
    stream = S3FileChangeStream(bucket, queue_name=names["queue"])
    bucket.apply()
    stream.apply()
    try:
        sqs = boto3.client("sqs", region_name="cn-north-1")
        url = sqs.get_queue_url(QueueName=names["queue"])["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        dlq = f"arn:aws-cn:sqs:cn-north-1:{ACCOUNT}:{names['queue']}-dlq"
        assert f'"{dlq}"' in attributes["RedrivePolicy"]
        assert f"arn:aws-cn:s3:::{bucket.bucket_name}" in attributes["Policy"]
        config = boto3.client("s3", region_name="cn-north-1").get_bucket_notification_configuration(
            Bucket=bucket.bucket_name
        )
        assert config["QueueConfigurations"][0]["QueueArn"].startswith("arn:aws-cn:sqs:")
        assert not stream.plan().changes
    finally:
        stream.destroy()
        bucket.destroy()


def test_the_bucket_s_region_is_checked_and_the_profile_s_is_used(
    moto_server: str, names: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3.client("s3").create_bucket(
        Bucket=names["bucket"], CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    with pytest.raises(PrimitiveError, match="is in region eu-west-1, not us-east-1") as caught:
        S3Bucket(names["bucket"], region="us-east-1").plan()
    assert "AWS_REGION=eu-west-1" in str(caught.value)
    assert S3Bucket(names["bucket"], region="eu-west-1").plan().detail == "region eu-west-1"
    # Without AWS_REGION, the region `aws configure` wrote for the profile.
    config = tmp_path / "config"
    config.write_text("[default]\nregion = eu-central-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert default_region() == "eu-central-1"


def test_force_destroy_says_which_object_s3_would_not_delete(
    moto_server: str, names: dict[str, str]
) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=names["bucket"], ObjectLockEnabledForBucket=True)
    s3.put_object(
        Bucket=names["bucket"],
        Key="kept.jpg",
        Body=b"x",
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=datetime.datetime.now(datetime.UTC) + datetime.timedelta(1),
    )
    bucket = S3Bucket(names["bucket"]).options(force_destroy=True)
    with pytest.raises(PrimitiveError, match="refused to delete 1 object version") as caught:
        bucket.destroy()
    assert "'kept.jpg'" in str(caught.value) and "object lock" in str(caught.value)
    assert "declare" not in str(caught.value)  # not "declare force_destroy": it is


def test_kms_and_sse_c_answers_are_not_missing_objects(
    through_proxy: HttpProxy, names: dict[str, str]
) -> None:
    bucket = S3Bucket(names["bucket"]).options(force_destroy=True)
    bucket.apply()
    objects = bucket.objects()
    objects.put("a.jpg", io.BytesIO(b"a"), content_type="image/jpeg")
    denied = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>'
        b"User: arn:aws:iam::123456789012:user/consumer is not authorized to perform: "
        b"kms:Decrypt on resource: arn:aws:kms:us-east-1:123456789012:key/k because no "
        b"identity-based policy allows the kms:Decrypt action</Message></Error>"
    )
    denied_reply = Reply(403, denied, "application/xml")
    _answer(through_proxy, lambda r: r.method == "GET" and "a.jpg" in r.path, denied_reply)
    with pytest.raises(PrimitiveError, match=r"kms:Decrypt \(reads\) and kms:GenerateDataKey"):
        objects.get("a.jpg")
    # A HEAD of an SSE-C object without its key: 400 and no body. Not "gone".
    _answer(through_proxy, lambda r: r.method == "HEAD" and "a.jpg" in r.path, Reply(400, b""))
    with pytest.raises(PrimitiveError, match="SSE-C"):
        objects.stat("a.jpg")
    bucket.destroy()


def test_the_bucket_client_is_one_resource_per_thread(
    moto_server: str, names: dict[str, str]
) -> None:
    bucket = S3Bucket(names["bucket"]).options(force_destroy=True)
    bucket.apply()
    shared = bucket.client()  # what a PROCESS-scoped BucketDependencyBuilder hands out
    metas: list[Any] = []  # kept alive, so that no two can share an id

    def upload(n: int) -> None:
        shared.put_object(Key=f"t/{n}.jpg", Body=b"x")
        metas.append(shared.meta)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(m) for m in metas}) == 6  # six resources, one per thread
    assert shared.meta is shared.meta  # and each thread keeps its own
    assert sorted(o.key for o in shared.objects.filter(Prefix="t/")) == [
        f"t/{n}.jpg" for n in range(6)
    ]
    bucket.destroy()
