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
   in the bucket's notification configuration (other queues, topics, functions, the
   EventBridge switch) is written back as it was read: S3 replaces the whole
   configuration on every change. S3 then tests every destination; while a new queue
   policy spreads (up to a minute) it answers "Unable to validate the following
   destination configurations", so that change is tried again for up to 2 minutes.

``plan`` reads what exists and names each part's change; ``apply`` creates or updates
what differs (a second apply changes nothing); ``destroy`` removes the notification entry
and both queues. ``queue_name`` defaults to ``<bucket>-changes`` (dots become dashes).

Options: ``max_attempts`` (default 5, 1 to 999) receives before an event is
dead-lettered; ``lease_seconds`` (default 60, 10 to 43200) visibility timeout, extended
while a replica works; ``retry_delay_seconds`` (default 10) first delay of a retried
event, doubled per attempt up to 15 minutes (10, 20, 40, 80 s: a transient failure is
retried over minutes, not seconds); ``prefix`` (default "": all keys) the keys whose
events are delivered. Settings: region and endpoint as in ``tideflow.io.aws.clients``;
ARNs use the caller's partition (``aws``, ``aws-cn``, ``aws-us-gov``).
Delivery guarantees: see ``tideflow.io.aws.source``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from tideflow.exceptions import ConfigError, PrimitiveError
from tideflow.io.aws import clients
from tideflow.io.aws.errors import error_code, one_line, translated
from tideflow.io.aws.notifications import created_record, record_body
from tideflow.io.aws.s3 import S3Bucket
from tideflow.io.aws.source import SQSDeadLetterQueue, SQSSource
from tideflow.io.primitive import PlanAction, PlanStep, SourcePrimitive
from tideflow.io.strategies import StoredObject

_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,76}")
_MISSING_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
# SQS's longest retention, for both queues; messages its redrive policy moves keep their
# first enqueue time, so they have what is left of it in the dead-letter queue.
RETENTION_SECONDS = 1_209_600
# How long apply tries again while SQS or S3 do not yet see what it just created.
QUEUE_READY_SECONDS = 60
NOTIFICATION_RETRY_SECONDS = 120
logger = logging.getLogger("tideflow.aws")


class S3FileChangeStream(SourcePrimitive):
    """Object-created events of an ``S3Bucket``, delivered through SQS."""

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
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.retry_delay_seconds = retry_delay_seconds
        self.prefix = prefix
        self._caller: tuple[str, str] | None = None
        self._check_options()

    def _option_names(self) -> frozenset[str]:
        return frozenset({"max_attempts", "lease_seconds", "retry_delay_seconds", "prefix"})

    def _check_option(self, name: str, value: Any) -> str | None:
        if name == "max_attempts" and not (isinstance(value, int) and 1 <= value <= 999):
            return "must be an integer from 1 to 999 (SQS's maxReceiveCount is one more)"
        if name == "lease_seconds" and not (
            isinstance(value, int | float) and 10 <= value <= 43_200
        ):
            return "must be 10 to 43200 seconds (SQS's visibility timeout range)"
        if name == "retry_delay_seconds" and not (
            isinstance(value, int | float) and 0 <= value <= 900
        ):
            return "must be 0 to 900 seconds"
        if name == "prefix" and not isinstance(value, str):
            return "must be a string"
        return None

    def _check_options(self) -> None:
        for name in self._option_names():
            problem = self._check_option(name, getattr(self, name))
            if problem:
                raise ConfigError(f"S3FileChangeStream {name}={getattr(self, name)!r}: {problem}")

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

    def sqs(self) -> Any:
        return clients.client("sqs", self.region)

    def _identity(self) -> tuple[str, str]:
        """The caller's (partition, account): ``aws``, ``aws-cn`` or ``aws-us-gov``."""
        if self._caller is None:
            with translated(
                resource="the caller's identity",
                action="look up",
                error=PrimitiveError,
                permission="sts:GetCallerIdentity",
            ):
                found = clients.client("sts", self.region).get_caller_identity()
            self._caller = (str(found["Arn"]).split(":")[1], str(found["Account"]))
        return self._caller

    def account(self) -> str:
        return self._identity()[1]

    def queue_arn(self, name: str) -> str:
        partition, account = self._identity()
        return f"arn:{partition}:sqs:{self.region}:{account}:{name}"

    def bucket_arn(self) -> str:
        return f"arn:{self._identity()[0]}:s3:::{self.s3_bucket.bucket_name}"

    def _queue_url(self, name: str) -> str | None:
        try:
            return str(self.sqs().get_queue_url(QueueName=name)["QueueUrl"])
        except Exception as exc:
            if error_code(exc) in _MISSING_QUEUE:
                return None
            with translated(
                resource=f"SQS queue {name}",
                action="look up",
                error=PrimitiveError,
                permission="sqs:GetQueueUrl",
            ):
                raise
        raise AssertionError("unreachable")  # pragma: no cover

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

    # -- parts ---------------------------------------------------------------------------

    def _queue_step(self, name: str, wanted: dict[str, str]) -> PlanStep:
        url = self._queue_url(name)
        resource = f"sqs-queue:{name}"
        if url is None:
            return PlanStep(resource, "SQSQueue", PlanAction.CREATE, _describe(wanted))
        with translated(
            resource=f"SQS queue {name}",
            action="read the attributes of",
            error=PrimitiveError,
            permission="sqs:GetQueueAttributes",
        ):
            current = self.sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
                "Attributes"
            ]
        differ = sorted(k for k, v in wanted.items() if not _same(k, current.get(k), v))
        if differ:
            return PlanStep(resource, "SQSQueue", PlanAction.UPDATE, "set " + ", ".join(differ))
        return PlanStep(resource, "SQSQueue", PlanAction.NO_CHANGE)

    def _apply_queue(self, name: str, wanted: dict[str, str]) -> PlanStep:
        step = self._queue_step(name, wanted)
        what = f"SQS queue {name}"
        with translated(
            resource=what,
            action="create or update",
            error=PrimitiveError,
            permission="sqs:CreateQueue, sqs:SetQueueAttributes",
        ):
            # A redrive policy naming a dead-letter queue created a moment ago can be
            # refused until SQS sees that queue.
            if step.action is PlanAction.CREATE:
                url = _retried(
                    lambda: self.sqs().create_queue(QueueName=name, Attributes=wanted),
                    retry_if=_dead_letter_target_unseen,
                    what=what,
                )["QueueUrl"]
                # "Wait at least one second after the queue is created to be able to use
                # the queue" (CreateQueue): until its attributes answer.
                _retried(
                    lambda: self.sqs().get_queue_attributes(
                        QueueUrl=url, AttributeNames=["QueueArn"]
                    ),
                    retry_if=lambda exc: error_code(exc) in _MISSING_QUEUE,
                    what=what,
                )
            elif step.action is PlanAction.UPDATE:
                url = self._queue_url(name)
                _retried(
                    lambda: self.sqs().set_queue_attributes(QueueUrl=url, Attributes=wanted),
                    retry_if=_dead_letter_target_unseen,
                    what=what,
                )
        return step

    def _notification_config(self) -> dict[str, Any]:
        with translated(
            resource=self.s3_bucket.resource,
            action="read the notification configuration of",
            error=PrimitiveError,
            permission="s3:GetBucketNotification",
        ):
            config = self.s3_bucket.s3().get_bucket_notification_configuration(
                Bucket=self.s3_bucket.bucket_name
            )
        config.pop("ResponseMetadata", None)
        return dict(config)

    def _notification_step(self, config: dict[str, Any] | None) -> PlanStep:
        resource = f"s3-notification:{self.s3_bucket.bucket_name}/{self.notification_id}"
        detail = f"s3:ObjectCreated:* {self.prefix or '(all keys)'} -> {self.queue_name}"
        if config is None:
            return PlanStep(resource, "S3Notification", PlanAction.CREATE, detail)
        mine = [
            q for q in config.get("QueueConfigurations", []) if q.get("Id") == self.notification_id
        ]
        if not mine:
            return PlanStep(resource, "S3Notification", PlanAction.CREATE, detail)
        if not _same_notification(mine[0], self._notification()):
            return PlanStep(resource, "S3Notification", PlanAction.UPDATE, detail)
        return PlanStep(resource, "S3Notification", PlanAction.NO_CHANGE)

    def _put_notifications(self, config: dict[str, Any], queues: list[dict[str, Any]]) -> None:
        """Write the configuration read as ``config`` back with ``queues`` as its queues.

        Every other part goes back as it came: an enabled EventBridge switch reads as an
        empty ``{}`` and must be sent as one, or EventBridge delivery stops.
        """
        config = {k: v for k, v in config.items() if v is not None}
        config["QueueConfigurations"] = queues
        try:
            _retried(
                lambda: self.s3_bucket.s3().put_bucket_notification_configuration(
                    Bucket=self.s3_bucket.bucket_name, NotificationConfiguration=config
                ),
                retry_if=_destinations_unvalidated,
                what=f"the notifications of {self.s3_bucket.resource}",
                seconds=NOTIFICATION_RETRY_SECONDS,
            )
        except Exception as exc:
            if _destinations_unvalidated(exc):
                raise PrimitiveError(self._unvalidated_message(exc)) from exc
            with translated(
                resource=self.s3_bucket.resource,
                action="set the notification configuration of",
                error=PrimitiveError,
                permission="s3:PutBucketNotification",
            ):
                raise

    def _unvalidated_message(self, exc: Exception) -> str:
        details = getattr(exc, "response", {}).get("Error", {})
        named = [
            f"{details[key]}: {details.get(key.replace('Name', 'Value'), '')}"
            for key in sorted(details)
            if key.startswith("ArgumentName")
        ]
        return (
            f"S3 could not validate the notification destinations of {self.s3_bucket.resource} "
            f"for {NOTIFICATION_RETRY_SECONDS} s ({'; '.join(named) or one_line(str(exc))}). "
            f"If that is {self.queue_arn(self.queue_name)}, its queue policy does not let this "
            "bucket send; if it is another destination of the bucket, fix or remove it (S3 "
            "tests every destination on each change)"
        )

    # -- plan / apply / destroy ----------------------------------------------------------

    def primitive_id(self) -> str:
        return f"s3-file-change-stream:{self.s3_bucket.bucket_name}/{self.queue_name}"

    def depends_on(self) -> tuple[S3Bucket, ...]:
        return (self.s3_bucket,)

    def _summary(self, children: list[PlanStep]) -> PlanStep:
        detail = f"dead letter after {self.max_attempts} attempt(s), lease {self.lease_seconds:g}s"
        return self.step(PlanAction.of_parts(children), detail, *children)

    def plan(self) -> PlanStep:
        self._check_options()
        config = self._notification_config() if self.s3_bucket.exists() else None
        return self._summary(
            [
                self._queue_step(self.dead_letter_queue_name, self._dlq_attributes()),
                self._queue_step(self.queue_name, self._queue_attributes()),
                self._notification_step(config),
            ]
        )

    def apply(self) -> PlanStep:
        self._check_options()
        children = [
            self._apply_queue(self.dead_letter_queue_name, self._dlq_attributes()),
            self._apply_queue(self.queue_name, self._queue_attributes()),
        ]
        config = self._notification_config()
        step = self._notification_step(config)
        if step.action is not PlanAction.NO_CHANGE:
            others = [
                q
                for q in config.get("QueueConfigurations", [])
                if q.get("Id") != self.notification_id
            ]
            self._put_notifications(config, [*others, self._notification()])
        children.append(step)
        return self._summary(children)

    def _destroy_steps(self, act: bool) -> list[PlanStep]:
        steps: list[PlanStep] = []
        resource = f"s3-notification:{self.s3_bucket.bucket_name}/{self.notification_id}"
        config = self._notification_config() if self.s3_bucket.exists() else None
        queues = (config or {}).get("QueueConfigurations", [])
        others = [q for q in queues if q.get("Id") != self.notification_id]
        if config is not None and len(others) != len(queues):
            steps.append(PlanStep(resource, "S3Notification", PlanAction.DELETE))
            if act:
                self._put_notifications(config, others)
        else:
            steps.append(PlanStep(resource, "S3Notification", PlanAction.NO_CHANGE, "already gone"))
        for name in (self.queue_name, self.dead_letter_queue_name):
            url = self._queue_url(name)
            if url is None:
                steps.append(
                    PlanStep(f"sqs-queue:{name}", "SQSQueue", PlanAction.NO_CHANGE, "already gone")
                )
                continue
            steps.append(PlanStep(f"sqs-queue:{name}", "SQSQueue", PlanAction.DELETE))
            if act:
                _delete_queue(self.sqs(), name, url)
        return steps

    def _destroy_summary(self, children: list[PlanStep]) -> PlanStep:
        gone = all(c.action is PlanAction.NO_CHANGE for c in children)
        action = PlanAction.NO_CHANGE if gone else PlanAction.DELETE
        return self.step(action, "already gone" if gone else "", *children)

    def plan_destroy(self) -> PlanStep:
        return self._destroy_summary(self._destroy_steps(act=False))

    def destroy(self) -> PlanStep:
        return self._destroy_summary(self._destroy_steps(act=True))

    # -- run time ------------------------------------------------------------------------

    def source(self) -> SQSSource:
        self._check_options()
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
        store = self.s3_bucket.objects()
        records = [
            created_record(
                bucket=self.s3_bucket.bucket_name,
                stored=stored,
                version_id=store.version_id(stored.key, stored.version),
                configuration_id="tideflow-replay",
            )
            for stored in objects
        ]
        queue = self._queue_url(self.queue_name)
        if queue is None:
            raise PrimitiveError(f"SQS queue {self.queue_name} does not exist: run tideflow apply")
        sent = 0
        for start in range(0, len(records), 10):
            entries = [
                {"Id": str(n), "MessageBody": record_body(record)}
                for n, record in enumerate(records[start : start + 10])
            ]
            with translated(
                resource=f"SQS queue {self.queue_name}",
                action="send replayed events to",
                error=PrimitiveError,
                permission="sqs:SendMessage",
            ):
                answer = self.sqs().send_message_batch(QueueUrl=queue, Entries=entries)
            if answer.get("Failed"):
                failure = answer["Failed"][0]
                raise PrimitiveError(
                    f"SQS queue {self.queue_name} refused {len(answer['Failed'])} replayed "
                    f"event(s): {failure.get('Code')}: {failure.get('Message')}"
                )
            sent += len(answer.get("Successful", []))
        return sent


def _retried(
    call: Callable[[], Any],
    *,
    retry_if: Callable[[Exception], bool],
    what: str,
    seconds: float = QUEUE_READY_SECONDS,
) -> Any:
    """``call()``, tried again after 1, 2, 4 ... 15 s while it fails with an error that
    ``retry_if`` accepts, for up to ``seconds``; the last error is raised."""
    deadline = time.monotonic() + seconds
    delay = 1.0
    while True:
        try:
            return call()
        except Exception as exc:
            if not retry_if(exc) or time.monotonic() + delay > deadline:
                raise
            logger.info("%s: %s; trying again in %gs", what, one_line(str(exc)), delay)
            time.sleep(delay)
            delay = min(delay * 2, 15.0)


def _dead_letter_target_unseen(exc: Exception) -> bool:
    return "dead letter target does not exist" in str(exc).lower()


def _destinations_unvalidated(exc: Exception) -> bool:
    return error_code(exc) == "InvalidArgument" and "unable to validate" in str(exc).lower()


def _delete_queue(sqs: Any, name: str, url: str) -> None:
    try:
        sqs.delete_queue(QueueUrl=url)
    except Exception as exc:
        if error_code(exc) in _MISSING_QUEUE:
            return
        with translated(
            resource=f"SQS queue {name}",
            action="delete",
            error=PrimitiveError,
            permission="sqs:DeleteQueue",
        ):
            raise


def _describe(attributes: dict[str, str]) -> str:
    shown = {
        "VisibilityTimeout": "visibility {}s",
        "MessageRetentionPeriod": "retention {}s",
        "RedrivePolicy": "redrive policy",
        "Policy": "queue policy (s3.amazonaws.com from this bucket only)",
    }
    parts = [fmt.format(attributes[k]) for k, fmt in shown.items() if k in attributes]
    return ", ".join(parts)


def _same(name: str, current: str | None, wanted: str) -> bool:
    if current is None:
        return False
    if name in ("RedrivePolicy", "Policy"):
        try:
            return _normal(json.loads(current)) == _normal(json.loads(wanted))
        except ValueError:
            return False
    return str(current) == str(wanted)


def _normal(value: Any) -> Any:
    """JSON with numbers as strings and one-item lists as items, as AWS may echo them."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_normal(v) for v in value]
        return items[0] if len(items) == 1 else items
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(value)
    return value


def _same_notification(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    def rules(entry: dict[str, Any]) -> list[tuple[str, str]]:
        found = entry.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        return sorted((str(r["Name"]).lower(), str(r["Value"])) for r in found)

    return (
        current.get("QueueArn") == wanted["QueueArn"]
        and sorted(current.get("Events", [])) == sorted(wanted["Events"])
        and rules(current) == rules(wanted)
    )
