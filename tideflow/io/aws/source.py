"""SQS as a tideflow ``Source``: leased, at-least-once delivery of S3 events.

Delivery guarantees:

- ``pull`` long-polls (``WaitTimeSeconds`` = the caller's timeout rounded up, 1 to 20 s:
  an idle consumer makes at most one request per second and worker, never a busy loop).
  A received message is invisible to other consumers for the queue's visibility timeout
  (``lease_seconds``), which ``extend`` pushes back (``ChangeMessageVisibility``) while a
  replica works.
- One SQS message can hold several S3 records: each becomes a delivery, and the message
  is settled once all of its records are. It is deleted only after every record was
  acked (the sink committed) or dead-lettered; if any record failed retryably, the whole
  message comes back after a growing delay (``retry_delay_seconds`` * 2^(attempt-1),
  at most 15 minutes) by setting its visibility, and its acked records write nothing
  the second time (rows are idempotent on the object identity).
- A retryable ``nack`` once the message was received ``max_attempts`` times (SQS's
  ``ApproximateReceiveCount``), or a non-retryable one, sends that record at once to the
  dead-letter queue with the reason (message attributes ``tideflow_error``,
  ``tideflow_attempts``) and returns True. A crash between the send and the delete can
  leave a duplicate dead letter, never a lost one. The queue's redrive policy
  (``maxReceiveCount`` = ``max_attempts``) moves messages no consumer ever finished
  (crash loops, timeouts); their dead letters read "delivery attempts exhausted".
- ``s3:TestEvent`` messages, records other than ``ObjectCreated:*`` and keys outside the
  stream's ``prefix`` are deleted unprocessed; a body that is not an S3 notification is
  dead-lettered at once.

``stats()`` asks SQS for its approximate counts (one ``GetQueueAttributes`` call): visible
messages are the backlog (``pending``, what autoscaling and ``/metrics`` report), messages
received and not yet deleted are in flight; ``done`` counts this process's deletions since
it started. The age of the oldest message is left unknown: SQS has no queue attribute for
it, only CloudWatch's ``ApproximateAgeOfOldestMessage`` metric (alarm on that one there).
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime
import logging
import math
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from tideflow.exceptions import MalformedEventError, SourceError, TideflowError
from tideflow.io.aws import clients
from tideflow.io.aws.errors import one_line, translated
from tideflow.io.aws.notifications import parse_body, parse_record, record_body
from tideflow.io.aws.s3 import S3Bucket
from tideflow.io.strategies import DeadLetterQueue, Source
from tideflow.types import DeadLetter, Delivery, ObjectReader, SourceStats
from tideflow.types.aws import S3FileChangeEvent

logger = logging.getLogger("tideflow.aws")

ERROR_ATTRIBUTE = "tideflow_error"
ATTEMPTS_ATTRIBUTE = "tideflow_attempts"
SOURCE_MESSAGE_ATTRIBUTE = "tideflow_source_message_id"
MAX_WAIT_SECONDS = 20
MAX_DELAY_SECONDS = 900
MAX_VISIBILITY_SECONDS = 43_200
_MAX_ERROR_CHARS = 1000
_EXHAUSTED = "delivery attempts exhausted: the consumer never finished it (crash or timeout)"


@dataclasses.dataclass
class _Leased:
    """A received message and the settlement of its records."""

    message_id: str
    receipt: str
    receive_count: int
    pending: set[int]
    retry: bool = False


class SQSSource(Source):
    """Receives S3 notifications from an SQS queue; dead letters go to its DLQ."""

    def __init__(
        self,
        *,
        queue_name: str,
        dead_letter_queue_name: str,
        region: str | None,
        reader: ObjectReader | None,
        max_attempts: int = 5,
        lease_seconds: float = 60.0,
        retry_delay_seconds: float = 2.0,
        prefix: str = "",
    ) -> None:
        self.queue_name = queue_name
        self.dead_letter_queue_name = dead_letter_queue_name
        self.region = region
        self.reader = reader
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.retry_delay_seconds = retry_delay_seconds
        self.prefix = prefix
        self._lock = threading.Lock()
        self._leased: dict[str, _Leased] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._urls: dict[str, str] = {}
        self._done = 0

    def sqs(self) -> Any:
        return clients.client("sqs", self.region)

    def _translated(self, action: str, permission: str) -> AbstractContextManager[None]:
        return translated(
            resource=f"SQS queue {self.queue_name}",
            action=action,
            error=SourceError,
            permission=permission,
        )

    def queue_url(self, name: str | None = None) -> str:
        name = name or self.queue_name
        if name not in self._urls:
            with self._translated(f"find queue {name} for", "sqs:GetQueueUrl"):
                self._urls[name] = self.sqs().get_queue_url(QueueName=name)["QueueUrl"]
        return self._urls[name]

    # -- delivery --------------------------------------------------------------------------

    def pull(self, *, max_messages: int, timeout: float) -> list[Delivery]:
        wait = min(MAX_WAIT_SECONDS, max(1, math.ceil(timeout)))
        with self._translated("receive from", "sqs:ReceiveMessage"):
            response = self.sqs().receive_message(
                QueueUrl=self.queue_url(),
                MaxNumberOfMessages=max(1, min(10, max_messages)),
                WaitTimeSeconds=wait,
                VisibilityTimeout=int(self.lease_seconds),
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                MessageAttributeNames=["All"],
            )
        deliveries: list[Delivery] = []
        for message in response.get("Messages", []):
            deliveries.extend(self._deliveries(message))
        return deliveries

    def _deliveries(self, message: dict[str, Any]) -> list[Delivery]:
        message_id = str(message["MessageId"])
        receipt = str(message["ReceiptHandle"])
        count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        try:
            records = parse_body(message.get("Body", ""))
            events = [
                (i, record, parse_record(record, reader=self.reader, prefix=self.prefix))
                for i, record in enumerate(records)
            ]
        except MalformedEventError as exc:
            logger.error("SQS message %s is dead-lettered: %s", message_id, exc)
            self._send_dead_letter(message_id, message.get("Body", ""), str(exc), count)
            self._delete(receipt)
            return []
        wanted = [(i, record, self._described(e)) for i, record, e in events if e is not None]
        if not wanted:  # s3:TestEvent, other event types, keys outside the prefix
            self._delete(receipt)
            return []
        with self._lock:
            self._leased[message_id] = _Leased(
                message_id, receipt, count, pending={i for i, _, _ in wanted}
            )
            for i, record, _ in wanted:
                self._records[f"{message_id}#{i}"] = record
        return [
            Delivery(ack_id=f"{message_id}#{i}", event=event, attempt=count)
            for i, _, event in wanted
            if event is not None
        ]

    def _described(self, event: S3FileChangeEvent) -> S3FileChangeEvent:
        """The event with the object's content type and user metadata (one HEAD), as
        Cloud Storage and the local stack deliver them; unchanged if the version is gone."""
        if not isinstance(self.reader, S3Bucket) or self.reader.bucket_name != event.bucket:
            return event
        try:
            stored = self.reader.objects().stat(event.file_path, version=event.version)
        except TideflowError as exc:
            logger.warning("cannot read the metadata of %s: %s", event.event_id, exc)
            return event
        if stored is None:
            return event
        metadata = {**event.metadata, **stored.metadata}
        if stored.content_type:
            metadata["content_type"] = stored.content_type
        return dataclasses.replace(event, metadata=metadata)

    def _settle(self, ack_id: str, *, retry: bool) -> tuple[_Leased | None, bool]:
        """Mark one record settled; the message and whether all its records are."""
        message_id, _, index = ack_id.rpartition("#")
        with self._lock:
            leased = self._leased.get(message_id)
            if leased is None or not index.isdigit() or int(index) not in leased.pending:
                return None, False
            leased.pending.discard(int(index))
            leased.retry = leased.retry or retry
            self._records.pop(ack_id, None)
            finished = not leased.pending
            if finished:
                del self._leased[message_id]
            return leased, finished

    def _finish(self, leased: _Leased) -> None:
        if leased.retry:
            delay = self.retry_delay_seconds * 2 ** max(0, leased.receive_count - 1)
            self._set_visibility([leased.receipt], min(MAX_DELAY_SECONDS, math.ceil(delay)))
        else:
            self._delete(leased.receipt)

    def ack(self, ack_ids: Sequence[str]) -> None:
        for ack_id in ack_ids:
            leased, finished = self._settle(ack_id, retry=False)
            if leased is not None and finished:
                self._finish(leased)

    def nack(self, ack_id: str, *, error: str, retryable: bool = True) -> bool:
        with self._lock:
            record = self._records.get(ack_id)
            leased = self._leased.get(ack_id.rpartition("#")[0])
        if record is None or leased is None:
            logger.debug("nack of unknown ack id ignored: %s", ack_id)
            return False
        dead = not retryable or leased.receive_count >= self.max_attempts
        if dead:
            self._send_dead_letter(
                leased.message_id, record_body(record), error, leased.receive_count
            )
        settled, finished = self._settle(ack_id, retry=not dead)
        if settled is not None and finished:
            self._finish(settled)
        return dead

    def extend(self, ack_ids: Sequence[str], *, seconds: float) -> None:
        with self._lock:
            receipts = {
                leased.receipt
                for leased in (self._leased.get(a.rpartition("#")[0]) for a in ack_ids)
                if leased is not None
            }
        if receipts:
            lease = max(1, min(MAX_VISIBILITY_SECONDS, math.ceil(seconds)))
            self._set_visibility(sorted(receipts), lease)

    def release_all(self) -> int:
        with self._lock:
            receipts = [leased.receipt for leased in self._leased.values()]
            self._leased.clear()
            self._records.clear()
        if receipts:
            self._set_visibility(receipts, 0)
        return len(receipts)

    def _set_visibility(self, receipts: list[str], seconds: int) -> None:
        for start in range(0, len(receipts), 10):
            chunk = receipts[start : start + 10]
            with self._translated("change message visibility in", "sqs:ChangeMessageVisibility"):
                response = self.sqs().change_message_visibility_batch(
                    QueueUrl=self.queue_url(),
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": seconds}
                        for i, r in enumerate(chunk)
                    ],
                )
            for failed in response.get("Failed", []):
                # Usually a receipt that expired: SQS redelivers that message anyway.
                logger.warning("visibility change refused: %s", failed.get("Message", failed))

    def _delete(self, receipt: str) -> None:
        with self._translated("delete a message from", "sqs:DeleteMessage"):
            self.sqs().delete_message(QueueUrl=self.queue_url(), ReceiptHandle=receipt)
        with self._lock:
            self._done += 1

    def _send_dead_letter(self, message_id: str, body: str, error: str, attempts: int) -> None:
        with self._translated("send a dead letter to the DLQ of", "sqs:SendMessage"):
            self.sqs().send_message(
                QueueUrl=self.queue_url(self.dead_letter_queue_name),
                MessageBody=body or "(empty message)",
                MessageAttributes={
                    ERROR_ATTRIBUTE: {
                        "DataType": "String",
                        "StringValue": one_line(error, limit=_MAX_ERROR_CHARS) or "failed",
                    },
                    ATTEMPTS_ATTRIBUTE: {"DataType": "Number", "StringValue": str(attempts)},
                    SOURCE_MESSAGE_ATTRIBUTE: {"DataType": "String", "StringValue": message_id},
                },
            )

    def stats(self) -> SourceStats:
        with self._translated("read the counts of", "sqs:GetQueueAttributes"):
            attributes = self.sqs().get_queue_attributes(
                QueueUrl=self.queue_url(),
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
        with self._lock:
            done = self._done
        return SourceStats(
            pending=int(attributes.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
            done=done,
        )


class SQSDeadLetterQueue(DeadLetterQueue):
    """The stream's dead-letter queue: list, count and send back dead letters.

    SQS cannot browse a queue, so ``list`` and ``retry`` receive up to ``scan_limit``
    messages (hiding them for ``scan_visibility`` seconds) and hand back those they keep
    (visibility 0). Concurrent scans hide messages from each other for that moment.
    A dead letter's id is ``<SQS message id>:<record index>``; ``retry`` sends the
    message back to the stream's queue and deletes it from the DLQ.
    """

    def __init__(
        self,
        *,
        queue_name: str,
        dead_letter_queue_name: str,
        region: str | None,
        reader: ObjectReader | None,
        scan_limit: int = 1000,
        scan_visibility: int = 30,
    ) -> None:
        self._source = SQSSource(
            queue_name=queue_name,
            dead_letter_queue_name=dead_letter_queue_name,
            region=region,
            reader=reader,
        )
        self.dead_letter_queue_name = dead_letter_queue_name
        self.reader = reader
        self.scan_limit = scan_limit
        self.scan_visibility = scan_visibility

    def _url(self) -> str:
        return self._source.queue_url(self.dead_letter_queue_name)

    def count(self) -> int:
        with self._source._translated("count the dead letters of", "sqs:GetQueueAttributes"):
            attributes = self._source.sqs().get_queue_attributes(
                QueueUrl=self._url(),
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
            attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
        )

    def _scan(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        seen: set[str] = set()
        sqs = self._source.sqs()
        while len(messages) < self.scan_limit:
            with self._source._translated("read the dead letters of", "sqs:ReceiveMessage"):
                batch = sqs.receive_message(
                    QueueUrl=self._url(),
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=1,
                    VisibilityTimeout=self.scan_visibility,
                    MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            seen.update(m["MessageId"] for m in fresh)
            messages.extend(fresh)
        return messages

    def _hand_back(self, messages: list[dict[str, Any]]) -> None:
        receipts = [str(m["ReceiptHandle"]) for m in messages]
        for start in range(0, len(receipts), 10):
            with self._source._translated(
                "hand back dead letters of", "sqs:ChangeMessageVisibility"
            ):
                self._source.sqs().change_message_visibility_batch(
                    QueueUrl=self._url(),
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": 0}
                        for i, r in enumerate(receipts[start : start + 10])
                    ],
                )

    def list(self, *, limit: int = 100) -> builtins.list[DeadLetter]:
        messages = self._scan()
        try:
            letters = [letter for m in messages for letter in self._letters(m)]
        finally:
            self._hand_back(messages)
        letters.sort(key=lambda d: d.dead_at, reverse=True)
        return letters[:limit]

    def retry(self, ids: Sequence[str] | None = None) -> int:
        wanted = None if ids is None else {i.split(":")[0] for i in ids}
        if wanted is not None and not wanted:
            return 0
        messages = self._scan()
        chosen = [m for m in messages if wanted is None or m["MessageId"] in wanted]
        others = [m for m in messages if m not in chosen]
        sqs = self._source.sqs()
        done = 0
        try:
            for message in chosen:
                with self._source._translated("send back a dead letter to", "sqs:SendMessage"):
                    sqs.send_message(QueueUrl=self._source.queue_url(), MessageBody=message["Body"])
                    sqs.delete_message(QueueUrl=self._url(), ReceiptHandle=message["ReceiptHandle"])
                done += 1
        finally:
            self._hand_back(others + chosen[done:])
        return done

    def _letters(self, message: dict[str, Any]) -> builtins.list[DeadLetter]:
        attributes = message.get("MessageAttributes", {})
        error = attributes.get(ERROR_ATTRIBUTE, {}).get("StringValue") or _EXHAUSTED
        attempts = int(
            attributes.get(ATTEMPTS_ATTRIBUTE, {}).get("StringValue")
            or message.get("Attributes", {}).get("ApproximateReceiveCount", "0")
        )
        sent = int(message.get("Attributes", {}).get("SentTimestamp", "0")) / 1000
        dead_at = datetime.datetime.fromtimestamp(sent, datetime.UTC)
        try:
            records = parse_body(message.get("Body", ""))
            events = [
                parse_record(r, reader=self.reader) or _placeholder(message, dead_at)
                for r in records
            ] or [_placeholder(message, dead_at)]
        except MalformedEventError:
            events = [_placeholder(message, dead_at)]
        return [
            DeadLetter(
                id=f"{message['MessageId']}:{i}",
                event=event,
                attempts=attempts,
                error=error,
                dead_at=dead_at,
            )
            for i, event in enumerate(events)
        ]


def _placeholder(message: dict[str, Any], when: datetime.datetime) -> S3FileChangeEvent:
    return S3FileChangeEvent(
        file_path=f"(unreadable message {message['MessageId']})",
        bucket="",
        version="unknown",
        size=0,
        event_time=when,
    )
