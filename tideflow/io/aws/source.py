"""SQS as a tideflow ``Source``: leased, at-least-once delivery of S3 events.

Delivery guarantees:

- Receiving long-polls for 20 s (SQS's most; every empty receive is billed), in
  background threads, one request at a time for each caller of ``pull`` that is waiting:
  ``pull`` itself returns after its own ``timeout`` with what arrived, so a worker stays
  free to stop, and an idle worker costs about three receives a minute. A message that
  arrives after its caller gave up waits for the next ``pull``; at ``close`` (and in
  ``release_all``) such messages are handed back at once. (A poll still open when the
  process exits can take a message SQS sends it then: that message comes back after the
  visibility timeout, one receive more.)
- A received message is invisible to other consumers for the queue's visibility timeout
  (``lease_seconds``), which ``extend`` pushes back (``ChangeMessageVisibility``, only
  once half of the lease has passed, so a frequent heartbeat costs one call per half
  lease). SQS keeps a message invisible for at most 12 hours after it was received: a
  message held for 11 hours (a warehouse outage that long) is handed back instead, and
  comes again as one more receive.
- One SQS message can hold several S3 records: each becomes a delivery, and the message
  is settled once all of its records are. It is deleted (``DeleteMessageBatch``, ten at a
  time) only after every record was acked (the sink committed) or dead-lettered; if any
  record failed retryably, the whole message comes back after a growing delay
  (``retry_delay_seconds`` * 2^(attempt-1), at most 15 minutes) by setting its
  visibility, and its acked records write nothing the second time (rows are idempotent on
  the object identity).
- A retryable ``nack`` once the message was received ``max_attempts`` times (SQS's
  ``ApproximateReceiveCount``), or a non-retryable one, sends that record at once to the
  dead-letter queue with the reason (message attributes ``tideflow_error``,
  ``tideflow_attempts``) and returns True. A crash between the send and the delete can
  leave a duplicate dead letter, never a lost one. The queue's redrive policy
  (``maxReceiveCount`` = ``max_attempts`` + 1) moves messages no consumer ever finished
  even on that extra receive (crash loops, timeouts); their dead letters read "delivery
  attempts exhausted". On the extra receive itself the runtime records the failure.
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
import collections
import dataclasses
import datetime
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from tideflow.exceptions import MalformedEventError, SourceError, TideflowError
from tideflow.io.aws.notifications import parse_body, parse_record, record_body
from tideflow.io.aws.queues import SqsQueue
from tideflow.io.aws.s3 import S3Bucket
from tideflow.io.dead_letters import (
    ATTEMPTS_ATTRIBUTE,
    ATTEMPTS_EXHAUSTED,
    ERROR_ATTRIBUTE,
    dead_letter_attributes,
)
from tideflow.io.strategies import DeadLetterQueue, Source
from tideflow.types import DeadLetter, Delivery, ObjectReader, SourceStats
from tideflow.types.aws import S3FileChangeEvent

logger = logging.getLogger("tideflow.aws")

MAX_WAIT_SECONDS = 20
MAX_DELAY_SECONDS = 900
# SQS refuses a visibility that ends more than 12 hours after the receive; a minute of
# room for clocks, and a message held 11 hours is handed back rather than lost to it.
MAX_VISIBILITY_SECONDS = 43_200 - 60
HAND_BACK_AFTER_SECONDS = 39_600
_POLL_ERROR_PAUSE_SECONDS = 1.0


@dataclasses.dataclass
class _Leased:
    """A received message and the settlement of its records."""

    message_id: str
    receipt: str
    receive_count: int
    pending: set[int]
    received_at: float  # clock() at the receive: SQS's 12 hours count from it
    visible_at: float  # when its visibility timeout runs out, as last set
    retry: bool = False


@dataclasses.dataclass(frozen=True)
class _Received:
    message: dict[str, Any]
    at: float  # clock() at the receive


class SQSSource(Source):
    """Receives S3 notifications from an SQS queue; dead letters go to its DLQ."""

    def __init__(
        self,
        *,
        queue_name: str,
        dead_letter_queue_name: str,
        region: str,
        reader: ObjectReader | None,
        max_attempts: int = 5,
        lease_seconds: float = 60.0,
        retry_delay_seconds: float = 10.0,
        prefix: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = SqsQueue(queue_name, region=region)
        self.dead_letters = SqsQueue(dead_letter_queue_name, region=region)
        self.reader = reader
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.retry_delay_seconds = retry_delay_seconds
        self.prefix = prefix
        self.clock = clock  # for leases' ages (the 12-hour limit)
        self._lock = threading.Lock()
        self._leased: dict[str, _Leased] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._done = 0
        # The background receives: callers waiting in pull, receives in flight, poller
        # threads, and what arrived that no caller has taken yet.
        self._arrived = threading.Condition()
        self._ready: collections.deque[_Received] = collections.deque()
        self._waiting = 0
        self._polling = 0
        self._pollers = 0
        self._wanted = 1
        self._poll_error: SourceError | None = None
        self._closed = False

    # -- receiving -------------------------------------------------------------------------

    def pull(self, *, max_messages: int, timeout: float) -> list[Delivery]:
        deliveries: list[Delivery] = []
        for received in self._take(max(1, min(10, max_messages)), timeout):
            deliveries.extend(self._deliveries(received))
        # Leases half gone while the messages waited are renewed before a replica starts.
        self.extend([d.ack_id for d in deliveries], seconds=self.lease_seconds)
        return deliveries

    def _take(self, wanted: int, timeout: float) -> list[_Received]:
        """Up to ``wanted`` received messages, waiting up to ``timeout`` for the first."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            self._waiting += 1
            self._wanted = wanted
            try:
                while not self._ready:
                    if self._poll_error is not None:
                        error, self._poll_error = self._poll_error, None
                        raise error
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._closed:
                        return []
                    if self._pollers < self._waiting:
                        self._pollers += 1
                        threading.Thread(
                            target=self._poll_forever, name="tideflow-sqs-receive", daemon=True
                        ).start()
                    self._arrived.notify_all()
                    self._arrived.wait(remaining)
                return [self._ready.popleft() for _ in range(min(wanted, len(self._ready)))]
            finally:
                self._waiting -= 1

    def _poll_forever(self) -> None:
        """Long-poll whenever more callers wait than receives are in flight or ready."""
        while True:
            with self._arrived:
                while not self._closed and self._waiting <= self._polling + len(self._ready):
                    self._arrived.wait()
                if self._closed:
                    self._pollers -= 1
                    return
                self._polling += 1
                wanted = self._wanted
            error: SourceError | None = None
            messages: list[dict[str, Any]] = []
            try:
                messages = self.queue.receive(
                    wanted=wanted, wait=MAX_WAIT_SECONDS, visibility=int(self.lease_seconds)
                )
            except SourceError as exc:
                error = exc
            except Exception as exc:  # a bug must not silently end the receiving
                logger.exception("receiving from SQS queue %s failed", self.queue.name)
                error = SourceError(f"cannot receive from SQS queue {self.queue.name}: {exc}")
            now = self.clock()
            with self._arrived:
                self._polling -= 1
                closed = self._closed
                if not closed:
                    self._ready.extend(_Received(m, now) for m in messages)
                if error is not None:
                    self._poll_error = error
                self._arrived.notify_all()
                if error is not None and not closed:
                    self._arrived.wait(_POLL_ERROR_PAUSE_SECONDS)
            if closed and messages:
                self._hand_back_now([str(m["ReceiptHandle"]) for m in messages])

    def _hand_back_now(self, receipts: list[str]) -> None:
        try:
            self.queue.change_visibility(receipts, 0)
        except SourceError as exc:  # their visibility timeout runs out by itself
            logger.warning("could not hand back %d message(s): %s", len(receipts), exc)

    def close(self) -> None:
        with self._arrived:
            self._closed = True
            unclaimed = [str(r.message["ReceiptHandle"]) for r in self._ready]
            self._ready.clear()
            self._arrived.notify_all()
        if unclaimed:
            self._hand_back_now(unclaimed)

    # -- delivery --------------------------------------------------------------------------

    def _deliveries(self, received: _Received) -> list[Delivery]:
        message = received.message
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
            self._delete([receipt])
            return []
        wanted = [(i, record, self._described(e)) for i, record, e in events if e is not None]
        if not wanted:  # s3:TestEvent, other event types, keys outside the prefix
            self._delete([receipt])
            return []
        with self._lock:
            self._leased[message_id] = _Leased(
                message_id,
                receipt,
                count,
                pending={i for i, _, _ in wanted},
                received_at=received.at,
                visible_at=received.at + self.lease_seconds,
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

    def _retry_later(self, leased: _Leased) -> None:
        delay = self.retry_delay_seconds * 2 ** max(0, leased.receive_count - 1)
        room = MAX_VISIBILITY_SECONDS - (self.clock() - leased.received_at)
        seconds = max(0, min(MAX_DELAY_SECONDS, math.ceil(delay), math.floor(room)))
        self.queue.change_visibility([leased.receipt], seconds)

    def ack(self, ack_ids: Sequence[str]) -> None:
        finished = [
            leased
            for leased, done in (self._settle(ack_id, retry=False) for ack_id in ack_ids)
            if leased is not None and done
        ]
        for leased in finished:
            if leased.retry:
                self._retry_later(leased)
        self._delete([leased.receipt for leased in finished if not leased.retry])

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
            if settled.retry:
                self._retry_later(settled)
            else:
                self._delete([settled.receipt])
        return dead

    def extend(self, ack_ids: Sequence[str], *, seconds: float) -> None:
        lease = max(1, math.ceil(seconds))
        now = self.clock()
        due: dict[int, list[str]] = {}
        too_old: list[_Leased] = []
        with self._lock:
            wanted = {a.rpartition("#")[0] for a in ack_ids}
            for leased in [self._leased[m] for m in wanted if m in self._leased]:
                held = now - leased.received_at
                if held >= HAND_BACK_AFTER_SECONDS:
                    too_old.append(leased)
                    continue
                if leased.visible_at - now >= lease / 2:
                    continue  # renewed only once half of the lease is gone
                visible = min(lease, math.floor(MAX_VISIBILITY_SECONDS - held))
                due.setdefault(visible, []).append(leased.receipt)
                leased.visible_at = now + visible
            for leased in too_old:
                self._forget(leased)
        for visible, receipts in due.items():
            self.queue.change_visibility(receipts, visible)
        if too_old:
            logger.warning(
                "%d message(s) held for %d hours, near SQS's 12-hour limit, are handed back: "
                "they will be received again",
                len(too_old),
                HAND_BACK_AFTER_SECONDS // 3600,
            )
            self.queue.change_visibility([leased.receipt for leased in too_old], 0)

    def _forget(self, leased: _Leased) -> None:
        """Drop a message's lease and records (the caller holds ``_lock``)."""
        self._leased.pop(leased.message_id, None)
        for index in leased.pending:
            self._records.pop(f"{leased.message_id}#{index}", None)

    def release_all(self) -> int:
        with self._lock:
            receipts = [leased.receipt for leased in self._leased.values()]
            self._leased.clear()
            self._records.clear()
        with self._arrived:
            receipts += [str(r.message["ReceiptHandle"]) for r in self._ready]
            self._ready.clear()
        if receipts:
            self.queue.change_visibility(receipts, 0)
        return len(receipts)

    def _delete(self, receipts: list[str]) -> None:
        deleted = self.queue.delete(receipts)
        with self._lock:
            self._done += deleted

    def _send_dead_letter(self, message_id: str, body: str, error: str, attempts: int) -> None:
        written = dead_letter_attributes(error=error, attempts=attempts, message_id=message_id)
        kinds = {ATTEMPTS_ATTRIBUTE: "Number"}
        self.dead_letters.send(
            body or "(empty message)",
            {
                name: {"DataType": kinds.get(name, "String"), "StringValue": value}
                for name, value in written.items()
            },
        )

    def stats(self) -> SourceStats:
        pending, in_flight = self.queue.counts()
        with self._lock:
            done = self._done
        return SourceStats(pending=pending, in_flight=in_flight, done=done)


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
        region: str,
        reader: ObjectReader | None,
        scan_limit: int = 1000,
        scan_visibility: int = 30,
    ) -> None:
        self.queue = SqsQueue(queue_name, region=region)
        self.dead_letters = SqsQueue(dead_letter_queue_name, region=region)
        self.reader = reader
        self.scan_limit = scan_limit
        self.scan_visibility = scan_visibility

    def count(self) -> int:
        return sum(self.dead_letters.counts())

    def _scan(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        seen: set[str] = set()
        while len(messages) < self.scan_limit:
            batch = self.dead_letters.receive(wanted=10, wait=1, visibility=self.scan_visibility)
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            seen.update(m["MessageId"] for m in fresh)
            messages.extend(fresh)
        return messages

    def _hand_back(self, messages: list[dict[str, Any]]) -> None:
        self.dead_letters.change_visibility([str(m["ReceiptHandle"]) for m in messages], 0)

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
        done = 0
        try:
            for message in chosen:
                self.queue.send(message["Body"])
                self.dead_letters.delete([str(message["ReceiptHandle"])])
                done += 1
        finally:
            self._hand_back(others + chosen[done:])
        return done

    def _letters(self, message: dict[str, Any]) -> builtins.list[DeadLetter]:
        attributes = message.get("MessageAttributes", {})
        error = attributes.get(ERROR_ATTRIBUTE, {}).get("StringValue") or ATTEMPTS_EXHAUSTED
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
