"""The AWS resources inside an ``S3FileChangeStream``, each planned and applied alone.

Each is a ``tideflow.io.composite.Part``: an SQS queue with the attributes the stream
wants, or the stream's entry in the bucket's notification configuration. Creating a
queue that appeared meanwhile, or deleting one already gone, is not an error.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from tideflow.exceptions import PrimitiveError
from tideflow.io.aws.errors import error_code
from tideflow.io.aws.queues import MISSING_QUEUE, SqsQueue
from tideflow.io.aws.s3 import S3Bucket
from tideflow.io.composite import Part
from tideflow.io.errors import one_line
from tideflow.io.primitive import PlanAction, PlanStep

# How long apply tries again while SQS or S3 do not yet see what it just created.
QUEUE_READY_SECONDS = 60
NOTIFICATION_RETRY_SECONDS = 120
logger = logging.getLogger("tideflow.aws")


class Queue(Part):
    """An SQS queue whose attributes are ``attributes()`` (read when planned)."""

    kind = "SQSQueue"

    def __init__(self, queue: SqsQueue, attributes: Callable[[], dict[str, str]]) -> None:
        self.queue = queue
        self.attributes = attributes
        self.name = f"sqs-queue:{queue.name}"

    def plan(self) -> PlanStep:
        url = self.queue.find_url()
        wanted = self.attributes()
        if url is None:
            return self.step(PlanAction.CREATE, _describe(wanted))
        with self.queue.translated("read the attributes of", "sqs:GetQueueAttributes"):
            current = self.queue.sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        differ = sorted(
            k for k, v in wanted.items() if not _same(k, current["Attributes"].get(k), v)
        )
        if differ:
            return self.step(PlanAction.UPDATE, "set " + ", ".join(differ))
        return self.step(PlanAction.NO_CHANGE)

    def apply(self, action: PlanAction) -> None:
        wanted, sqs, what = self.attributes(), self.queue.sqs(), f"SQS queue {self.queue.name}"
        # A redrive policy naming a dead-letter queue created a moment ago can be refused
        # until SQS sees that queue.
        with self.queue.translated("create or update", "sqs:CreateQueue, sqs:SetQueueAttributes"):
            if action is PlanAction.UPDATE:
                _retried(
                    lambda: sqs.set_queue_attributes(QueueUrl=self.queue.url(), Attributes=wanted),
                    retry_if=_dead_letter_target_unseen,
                    what=what,
                )
                return
            url = _retried(
                lambda: sqs.create_queue(QueueName=self.queue.name, Attributes=wanted),
                retry_if=_dead_letter_target_unseen,
                what=what,
            )["QueueUrl"]
            # "Wait at least one second after the queue is created to be able to use the
            # queue" (CreateQueue): until its attributes answer.
            _retried(
                lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]),
                retry_if=lambda exc: error_code(exc) in MISSING_QUEUE,
                what=what,
            )

    def plan_destroy(self) -> PlanStep:
        if self.queue.find_url() is None:
            return self.step(PlanAction.NO_CHANGE, "already gone")
        return self.step(PlanAction.DELETE)

    def delete(self) -> None:
        with self.queue.translated("delete", "sqs:DeleteQueue", gone_is_fine=True):
            self.queue.sqs().delete_queue(QueueUrl=self.queue.url())


class BucketNotification(Part):
    """The stream's entry ``entry()`` in the bucket's notification configuration.

    Everything else in that configuration (other queues, topics, functions, the
    EventBridge switch) is written back as it was read: S3 replaces the whole configuration
    on every change. S3 then tests every destination; while a new queue policy spreads (up
    to a minute) it answers "Unable to validate the following destination
    configurations", so that change is tried again for up to 2 minutes.
    """

    kind = "S3Notification"

    def __init__(
        self,
        bucket: S3Bucket,
        *,
        entry_id: str,
        entry: Callable[[], dict[str, Any]],
        detail: str,
    ) -> None:
        self.bucket = bucket
        self.entry_id = entry_id
        self.entry = entry
        self.detail = detail
        self.name = f"s3-notification:{bucket.bucket_name}/{entry_id}"

    def _config(self) -> dict[str, Any] | None:
        """The bucket's notification configuration; None while the bucket does not exist."""
        if not self.bucket.exists():
            return None
        with self.bucket.translated(
            "read the notification configuration of", "s3:GetBucketNotification"
        ):
            config = self.bucket.s3().get_bucket_notification_configuration(
                Bucket=self.bucket.bucket_name
            )
        config.pop("ResponseMetadata", None)
        return dict(config)

    def _split(self, config: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Any]]:
        """The stream's own queue entry, and the other ones."""
        queues = config.get("QueueConfigurations", [])
        mine = [q for q in queues if q.get("Id") == self.entry_id]
        return (mine[0] if mine else None), [q for q in queues if q.get("Id") != self.entry_id]

    def plan(self) -> PlanStep:
        config = self._config()
        mine = None if config is None else self._split(config)[0]
        if mine is None:
            return self.step(PlanAction.CREATE, self.detail)
        if not _same_notification(mine, self.entry()):
            return self.step(PlanAction.UPDATE, self.detail)
        return self.step(PlanAction.NO_CHANGE)

    def apply(self, action: PlanAction) -> None:
        config = self._config() or {}
        self._put(config, [*self._split(config)[1], self.entry()])

    def plan_destroy(self) -> PlanStep:
        config = self._config()
        if config is None or self._split(config)[0] is None:
            return self.step(PlanAction.NO_CHANGE, "already gone")
        return self.step(PlanAction.DELETE)

    def delete(self) -> None:
        config = self._config() or {}
        self._put(config, self._split(config)[1])

    def _put(self, config: dict[str, Any], queues: list[Any]) -> None:
        """Write the configuration read as ``config`` back with ``queues`` as its queues.

        Every other part goes back as it came: an enabled EventBridge switch reads as an
        empty ``{}`` and must be sent as one, or EventBridge delivery stops.
        """
        config = {k: v for k, v in config.items() if v is not None}
        config["QueueConfigurations"] = queues
        with self.bucket.translated(
            "set the notification configuration of",
            "s3:PutBucketNotification",
            cases={_destinations_unvalidated: self._unvalidated},
        ):
            _retried(
                lambda: self.bucket.s3().put_bucket_notification_configuration(
                    Bucket=self.bucket.bucket_name, NotificationConfiguration=config
                ),
                retry_if=_destinations_unvalidated,
                what=f"the notifications of {self.bucket.resource}",
                seconds=NOTIFICATION_RETRY_SECONDS,
            )

    def _unvalidated(self, exc: BaseException) -> PrimitiveError:
        details = getattr(exc, "response", {}).get("Error", {})
        named = [
            f"{details[key]}: {details.get(key.replace('Name', 'Value'), '')}"
            for key in sorted(details)
            if key.startswith("ArgumentName")
        ]
        return PrimitiveError(
            f"S3 could not validate the notification destinations of {self.bucket.resource} "
            f"for {NOTIFICATION_RETRY_SECONDS} s ({'; '.join(named) or one_line(str(exc))}). "
            f"If that is {self.entry()['QueueArn']}, its queue policy does not let this "
            "bucket send; if it is another destination of the bucket, fix or remove it (S3 "
            "tests every destination on each change)"
        )


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


def _dead_letter_target_unseen(exc: BaseException) -> bool:
    return "dead letter target does not exist" in str(exc).lower()


def _destinations_unvalidated(exc: BaseException) -> bool:
    return error_code(exc) == "InvalidArgument" and "unable to validate" in str(exc).lower()


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
