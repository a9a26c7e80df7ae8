"""A bucket's file-change stream on AWS: S3 event notifications into SQS.

``S3FileChangeStream(s3_bucket=bucket)`` manages, in apply order:

1. the dead-letter queue ``<queue>-dlq`` (messages kept 14 days);
2. the queue ``<queue>``: messages kept 14 days (SQS's most: an outage of the consumers
   shorter than that loses nothing), visibility timeout ``lease_seconds``, long polling
   (20 s), a redrive policy to the dead-letter queue after ``max_attempts`` + 1 receives
   (the extra receive lets a consumer record the failure of an event whose attempts all
   crashed before SQS moves it), and a queue policy that lets ``s3.amazonaws.com`` send
   messages from this bucket only (``aws:SourceArn`` = the bucket, ``aws:SourceAccount`` =
   this account);
3. the bucket's notification configuration entry ``tideflow-<queue>``:
   ``s3:ObjectCreated:*`` (under ``prefix`` when one is set) to the queue. Everything else
   in the bucket's notification configuration is written back as it was read (see
   ``tideflow.io.aws.stream_parts``).

Each is a part of a ``CompositePrimitive``: ``plan`` reads what exists and names each
part's change; ``apply`` creates or updates what differs (a second apply changes
nothing); ``destroy`` removes the notification entry and both queues. ``queue_name``
defaults to ``<bucket>-changes`` (dots become dashes).

Options: ``max_attempts`` (default 5, 1 to 999) receives before an event is
dead-lettered; ``lease_seconds`` (default 60, 10 to 43200) visibility timeout, extended
while a replica works; ``retry_delay_seconds`` (default 10) first delay of a retried
event, doubled per attempt up to 15 minutes (10, 20, 40, 80 s: a transient failure is
retried over minutes, not seconds); ``prefix`` (default "": all keys) the keys whose
events are delivered. Settings: the bucket's region; the endpoint as boto3 reads it;
ARNs use the caller's partition (``aws``, ``aws-cn``, ``aws-us-gov``).
Delivery guarantees: see ``tideflow.io.aws.source``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from tideflow.exceptions import ConfigError, PrimitiveError
from tideflow.io.aws.clients import client
from tideflow.io.aws.errors import translated
from tideflow.io.aws.notifications import created_record, record_body
from tideflow.io.aws.queues import SqsQueue
from tideflow.io.aws.s3 import S3Bucket, S3ObjectStore
from tideflow.io.aws.source import SQSDeadLetterQueue, SQSSource
from tideflow.io.aws.stream_parts import BucketNotification, Queue
from tideflow.io.composite import CompositePrimitive, Part
from tideflow.io.options import OptionCheck, seconds, text, whole_number
from tideflow.io.primitive import SourcePrimitive
from tideflow.io.strategies import StoredObject

_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,76}")
# SQS's longest retention, for both queues; messages its redrive policy moves keep their
# first enqueue time, so they have what is left of it in the dead-letter queue.
RETENTION_SECONDS = 1_209_600


class S3FileChangeStream(CompositePrimitive, SourcePrimitive):
    """Object-created events of an ``S3Bucket``, delivered through SQS."""

    option_checks: ClassVar[Mapping[str, OptionCheck]] = {
        "max_attempts": whole_number(1, 999, " (SQS's maxReceiveCount is one more)"),
        "lease_seconds": seconds(10, 43_200, " (SQS's visibility timeout range)"),
        "retry_delay_seconds": seconds(0, 900),
        "prefix": text,
    }
    max_attempts: int
    lease_seconds: float
    retry_delay_seconds: float
    prefix: str

    def __init__(
        self,
        s3_bucket: S3Bucket,
        *,
        queue_name: str | None = None,
        max_attempts: int = 5,
        lease_seconds: float = 60.0,
        retry_delay_seconds: float = 10.0,
        prefix: str = "",
    ) -> None:
        self.s3_bucket = s3_bucket
        self.queue_name = queue_name or f"{s3_bucket.bucket_name.replace('.', '-')}-changes"
        if not _QUEUE_NAME.fullmatch(self.queue_name):
            raise ConfigError(
                f"queue name {self.queue_name!r} is not a valid SQS name (1 to 76 letters, "
                "digits, '-' or '_', leaving room for the '-dlq' suffix); pass queue_name="
            )
        self.options(
            max_attempts=max_attempts,
            lease_seconds=lease_seconds,
            retry_delay_seconds=retry_delay_seconds,
            prefix=prefix,
        )
        self._caller: tuple[str, str] | None = None

    # -- names ---------------------------------------------------------------------------

    @property
    def region(self) -> str:
        return self.s3_bucket.region

    @property
    def dead_letter_queue_name(self) -> str:
        return f"{self.queue_name}-dlq"

    @property
    def notification_id(self) -> str:
        return f"tideflow-{self.queue_name}"

    def _identity(self) -> tuple[str, str]:
        """The caller's (partition, account): ``aws``, ``aws-cn`` or ``aws-us-gov``."""
        if self._caller is None:
            with translated(
                resource="the caller's identity",
                action="look up",
                error=PrimitiveError,
                permission="sts:GetCallerIdentity",
            ):
                found = client("sts", self.region).get_caller_identity()
            self._caller = (str(found["Arn"]).split(":")[1], str(found["Account"]))
        return self._caller

    def account(self) -> str:
        return self._identity()[1]

    def queue_arn(self, name: str) -> str:
        partition, account = self._identity()
        return f"arn:{partition}:sqs:{self.region}:{account}:{name}"

    def bucket_arn(self) -> str:
        return f"arn:{self._identity()[0]}:s3:::{self.s3_bucket.bucket_name}"

    def _queue(self, name: str) -> SqsQueue:
        return SqsQueue(name, region=self.region, error=PrimitiveError)

    # -- desired state -------------------------------------------------------------------

    def _dlq_attributes(self) -> dict[str, str]:
        return {"MessageRetentionPeriod": str(RETENTION_SECONDS)}

    def _queue_attributes(self) -> dict[str, str]:
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "S3SendsObjectCreatedEvents",
                    "Effect": "Allow",
                    "Principal": {"Service": "s3.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": self.queue_arn(self.queue_name),
                    "Condition": {
                        "ArnEquals": {"aws:SourceArn": self.bucket_arn()},
                        "StringEquals": {"aws:SourceAccount": self.account()},
                    },
                }
            ],
        }
        redrive = {
            "deadLetterTargetArn": self.queue_arn(self.dead_letter_queue_name),
            "maxReceiveCount": self.max_attempts + 1,
        }
        return {
            "MessageRetentionPeriod": str(RETENTION_SECONDS),
            "VisibilityTimeout": str(int(self.lease_seconds)),
            "ReceiveMessageWaitTimeSeconds": "20",
            "RedrivePolicy": json.dumps(redrive),
            "Policy": json.dumps(policy),
        }

    def _notification(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "Id": self.notification_id,
            "QueueArn": self.queue_arn(self.queue_name),
            "Events": ["s3:ObjectCreated:*"],
        }
        if self.prefix:
            entry["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": self.prefix}]}}
        return entry

    # -- plan / apply / destroy ----------------------------------------------------------

    def primitive_id(self) -> str:
        return f"s3-file-change-stream:{self.s3_bucket.bucket_name}/{self.queue_name}"

    def depends_on(self) -> tuple[S3Bucket, ...]:
        return (self.s3_bucket,)

    def parts(self) -> list[Part]:
        return [
            Queue(self._queue(self.dead_letter_queue_name), self._dlq_attributes),
            Queue(self._queue(self.queue_name), self._queue_attributes),
            BucketNotification(
                self.s3_bucket,
                entry_id=self.notification_id,
                entry=self._notification,
                detail=f"s3:ObjectCreated:* {self.prefix or '(all keys)'} -> {self.queue_name}",
            ),
        ]

    def plan_detail(self) -> str:
        return f"dead letter after {self.max_attempts} attempt(s), lease {self.lease_seconds:g}s"

    # -- run time ------------------------------------------------------------------------

    def source(self) -> SQSSource:
        self.check_options()
        return SQSSource(
            queue_name=self.queue_name,
            dead_letter_queue_name=self.dead_letter_queue_name,
            region=self.region,
            reader=self.s3_bucket,
            max_attempts=self.max_attempts,
            lease_seconds=self.lease_seconds,
            retry_delay_seconds=self.retry_delay_seconds,
            prefix=self.prefix,
        )

    def dead_letter_queue(self) -> SQSDeadLetterQueue:
        return SQSDeadLetterQueue(
            queue_name=self.queue_name,
            dead_letter_queue_name=self.dead_letter_queue_name,
            region=self.region,
            reader=self.s3_bucket,
        )

    def replay(self, objects: Iterable[StoredObject]) -> int:
        """See ``SourcePrimitive.replay``: sends to the queue, for each object, the
        notification S3 sends when it is created (same bucket, key and version), so the
        consumers get the original event again. Ten messages per ``SendMessageBatch``."""
        records = [
            created_record(
                bucket=self.s3_bucket.bucket_name,
                stored=stored,
                version_id=S3ObjectStore.version_id(stored.version),
                configuration_id="tideflow-replay",
            )
            for stored in objects
        ]
        return self._queue(self.queue_name).send_all([record_body(r) for r in records])
