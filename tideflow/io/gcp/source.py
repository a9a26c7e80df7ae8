"""Pub/Sub as a tideflow ``Source``: leased, at-least-once delivery of Cloud Storage events.

Delivery guarantees:

- ``pull`` uses synchronous pull and never holds more than ``max_outstanding`` messages
  leased by this process (flow control); a pulled message is leased for the
  subscription's ack deadline, which ``extend`` pushes back while a replica works.
- ``ack`` after the sink committed. A message whose lease ran out (a crashed replica or
  run process) is redelivered by Pub/Sub; rows are idempotent on the object identity.
- ``nack`` of a retryable failure hands the message back at once (ack deadline 0); Pub/Sub
  counts the delivery attempts. When the attempts reach ``max_attempts``, or the failure
  is not retryable, the source publishes the message to the dead-letter topic with its
  error (attributes ``tideflow_error``, ``tideflow_attempts``) and then acks it; a crash
  between the two can leave a duplicate dead letter, never a lost one.
- Pub/Sub's own dead-letter policy (after ``max(5, max_attempts)`` deliveries) catches the
  messages no consumer ever finished; their error reads "delivery attempts exhausted".
- A message that is not a readable Cloud Storage notification is dead-lettered at once;
  notifications of other event types are acked and skipped.

Dead letters live in the dead-letter subscription, and Pub/Sub has no way to browse a
subscription, so ``dead_letters``, ``dead_letter_for`` and ``stats`` pull up to
``scan_limit`` (default 1,000) dead letters and hand them straight back. Limits: a scan
sees at most ``scan_limit`` of them, Pub/Sub may return fewer than are stored, concurrent
scans hide messages from each other for a moment, a scan's pull cancelled by its timeout
can hide a message until its 60 s ack deadline passes, and dead letters expire with the
subscription's retention (7 days by default). Results are cached for ``scan_cache_seconds``
(default 5). ``retry_dead_letters`` republishes to the stream's topic (so every
subscription of that topic receives it again) and acks the dead letter.

``stats()`` is best effort: ``in_flight`` and ``done`` count this process's leases and
acks since it started, ``dead_lettered`` comes from a scan, and ``pending`` is always 0
because the Pub/Sub API does not report a backlog (Cloud Monitoring's
``pubsub.googleapis.com/subscription/num_undelivered_messages`` does).
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from tideflow.exceptions import SourceError
from tideflow.io.gcp.errors import one_line, translated
from tideflow.io.gcp.notifications import (
    GCSFileChangeEvent,
    MalformedNotificationError,
    parse_notification,
)
from tideflow.io.gcp.transport import PubSubTransport, ReceivedMessage
from tideflow.io.strategies import Source
from tideflow.types import DeadLetter, Delivery, ObjectReader, SourceStats

logger = logging.getLogger("tideflow.gcp")

ERROR_ATTRIBUTE = "tideflow_error"
ATTEMPTS_ATTRIBUTE = "tideflow_attempts"
SOURCE_MESSAGE_ATTRIBUTE = "tideflow_source_message_id"
_PUBSUB_DELIVERY_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount"
_ADDED_PREFIXES = ("tideflow_", "CloudPubSubDeadLetterSource")
# Pub/Sub attribute values are limited to 1,024 bytes.
_MAX_ERROR_BYTES = 1000
_MAX_LEASE_SECONDS = 600
_EXHAUSTED = "delivery attempts exhausted: the consumer never finished it (crash or timeout)"


class PubSubSource(Source):
    """Pulls Cloud Storage notifications from a subscription, with flow control."""

    def __init__(
        self,
        pubsub: PubSubTransport,
        *,
        subscription: str,
        topic: str,
        dead_letter_topic: str,
        dead_letter_subscription: str,
        reader: ObjectReader | None,
        max_attempts: int,
        max_outstanding: int,
        scan_limit: int = 1000,
        scan_timeout: float = 1.0,
        scan_cache_seconds: float = 5.0,
    ) -> None:
        self.pubsub = pubsub
        self.subscription = subscription
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        self.dead_letter_subscription = dead_letter_subscription
        self.reader = reader
        self.max_attempts = max_attempts
        self.max_outstanding = max_outstanding
        self.scan_limit = scan_limit
        self.scan_timeout = scan_timeout
        self.scan_cache_seconds = scan_cache_seconds
        self._leased: dict[str, ReceivedMessage] = {}
        self._reserved = 0
        self._done = 0
        self._room = threading.Condition()
        self._scan_lock = threading.Lock()
        self._scanned: tuple[float, list[DeadLetter]] | None = None

    # -- delivery --------------------------------------------------------------------------

    def pull(self, *, max_messages: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        with self._room:
            while len(self._leased) + self._reserved >= self.max_outstanding:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._room.wait(remaining)
            wanted = min(max_messages, self.max_outstanding - len(self._leased) - self._reserved)
            self._reserved += wanted
        try:
            with self._translated("pull from", self.subscription):
                received = self.pubsub.pull(
                    self.subscription,
                    max_messages=wanted,
                    timeout=max(0.0, deadline - time.monotonic()),
                )
        finally:
            with self._room:
                self._reserved -= wanted
                self._room.notify_all()
        return [d for d in (self._delivery(m) for m in received) if d is not None]

    def _delivery(self, message: ReceivedMessage) -> Delivery | None:
        try:
            event = parse_notification(
                attributes=message.attributes, data=message.data, reader=self.reader
            )
        except MalformedNotificationError as exc:
            logger.error("message %s is dead-lettered: %s", message.message_id, exc)
            self._dead_letter(message, error=str(exc), attempts=_attempt(message))
            self._acknowledge([message.ack_id])
            return None
        if event is None:
            self._acknowledge([message.ack_id])
            return None
        with self._room:
            self._leased[message.ack_id] = message
        return Delivery(ack_id=message.ack_id, event=event, attempt=_attempt(message))

    def _forget(self, ack_ids: Sequence[str]) -> list[ReceivedMessage]:
        with self._room:
            found = [m for m in (self._leased.pop(i, None) for i in ack_ids) if m is not None]
            self._room.notify_all()
        return found

    def ack(self, ack_ids: Sequence[str]) -> None:
        if not ack_ids:
            return
        self._forget(ack_ids)
        self._acknowledge(ack_ids)
        with self._room:
            self._done += len(ack_ids)

    def _acknowledge(self, ack_ids: Sequence[str]) -> None:
        with self._translated("acknowledge messages of", self.subscription):
            self.pubsub.acknowledge(self.subscription, list(ack_ids))

    def nack(self, ack_id: str, *, error: str, retryable: bool = True) -> None:
        forgotten = self._forget([ack_id])
        if not forgotten:
            # Not leased here (already acked, or released at shutdown): nothing to hand back.
            logger.debug("nack of unknown ack id ignored: %s", ack_id)
            return
        message = forgotten[0]
        attempts = _attempt(message)
        if retryable and attempts < self.max_attempts:
            self._release([ack_id])
            return
        self._dead_letter(message, error=error, attempts=attempts)
        self._acknowledge([ack_id])

    def _release(self, ack_ids: Sequence[str]) -> None:
        with self._translated("hand back messages of", self.subscription):
            self.pubsub.modify_ack_deadline(self.subscription, list(ack_ids), seconds=0)

    def extend(self, ack_ids: Sequence[str], *, seconds: float) -> None:
        with self._room:
            mine = [i for i in ack_ids if i in self._leased]
        if mine:
            lease = max(1, min(_MAX_LEASE_SECONDS, round(seconds)))
            with self._translated("extend leases on", self.subscription):
                self.pubsub.modify_ack_deadline(self.subscription, mine, seconds=lease)

    def release_all(self) -> int:
        with self._room:
            ack_ids = list(self._leased)
        self._forget(ack_ids)
        if ack_ids:
            self._release(ack_ids)
        return len(ack_ids)

    def close(self) -> None:
        self.pubsub.close()

    def _dead_letter(self, message: ReceivedMessage, *, error: str, attempts: int) -> None:
        attributes = {
            **message.attributes,
            ERROR_ATTRIBUTE: _truncate(one_line(error, limit=_MAX_ERROR_BYTES)),
            ATTEMPTS_ATTRIBUTE: str(attempts),
            SOURCE_MESSAGE_ATTRIBUTE: message.message_id,
        }
        with self._translated("publish a dead letter to", self.dead_letter_topic):
            self.pubsub.publish(self.dead_letter_topic, message.data, attributes)
        self._scanned = None

    def _translated(self, action: str, resource: str) -> AbstractContextManager[None]:
        permission = (
            "pubsub.topics.publish" if "/topics/" in resource else "pubsub.subscriptions.consume"
        )
        return translated(
            resource=resource, action=action, error=SourceError, permission=permission
        )

    # -- dead letters and stats ----------------------------------------------------------------

    def stats(self) -> SourceStats:
        dead = len(self._dead_letters())
        with self._room:
            return SourceStats(
                pending=0, in_flight=len(self._leased), done=self._done, dead_lettered=dead
            )

    def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        return self._dead_letters()[:limit]

    def dead_letter_for(self, file_path: str) -> DeadLetter | None:
        matches = [d for d in self._dead_letters() if d.event.file_path == file_path]
        return max(matches, key=lambda d: (d.event.generation, d.dead_at), default=None)

    def _dead_letters(self) -> list[DeadLetter]:
        """Dead letters seen by the latest scan (at most ``scan_limit``), newest first."""
        with self._scan_lock:
            now = time.monotonic()
            if self._scanned is None or now - self._scanned[0] > self.scan_cache_seconds:
                _, messages = self._scan(accept=lambda _: False)
                letters = sorted(
                    (self._letter(m) for m in messages), key=lambda d: d.dead_at, reverse=True
                )
                self._scanned = (now, letters)
            return list(self._scanned[1])

    def retry_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        """Republish dead letters (all, or those ``ids``) to the topic; how many."""
        wanted = None if ids is None else set(ids)
        if wanted is not None and not wanted:
            return 0

        def retry(message: ReceivedMessage) -> bool:
            if wanted is not None and message.message_id not in wanted:
                return False
            attributes = {
                k: v for k, v in message.attributes.items() if not k.startswith(_ADDED_PREFIXES)
            }
            with self._translated("republish a dead letter to", self.topic):
                self.pubsub.publish(self.topic, message.data, attributes)
            return True

        with self._scan_lock:
            retried, _ = self._scan(accept=retry)
            self._scanned = None
        return len(retried)

    def _scan(
        self, *, accept: Callable[[ReceivedMessage], bool]
    ) -> tuple[list[ReceivedMessage], list[ReceivedMessage]]:
        """Pull up to ``scan_limit`` dead letters; ack those ``accept`` takes, hand back the rest.

        Returns the accepted ones and all pulled ones.
        """
        pulled: list[ReceivedMessage] = []
        accepted: list[ReceivedMessage] = []
        try:
            while len(pulled) < self.scan_limit:
                with self._translated("read dead letters from", self.dead_letter_subscription):
                    batch = self.pubsub.pull(
                        self.dead_letter_subscription,
                        max_messages=min(1000, self.scan_limit - len(pulled)),
                        timeout=self.scan_timeout,
                    )
                if not batch:
                    break
                pulled.extend(batch)
            for message in pulled:
                if accept(message):
                    accepted.append(message)
        finally:
            # Also after a failure: what was accepted (republished) must not stay behind.
            taken = {m.ack_id for m in accepted}
            back = [m.ack_id for m in pulled if m.ack_id not in taken]
            with self._translated("settle dead letters of", self.dead_letter_subscription):
                if back:
                    self.pubsub.modify_ack_deadline(self.dead_letter_subscription, back, seconds=0)
                if taken:
                    self.pubsub.acknowledge(self.dead_letter_subscription, sorted(taken))
        return accepted, pulled

    def _letter(self, message: ReceivedMessage) -> DeadLetter:
        attributes = message.attributes
        try:
            event = parse_notification(attributes=attributes, data=message.data, reader=self.reader)
        except MalformedNotificationError:
            event = None
        if event is None:
            event = GCSFileChangeEvent(
                file_path=attributes.get("objectId", f"(unreadable message {message.message_id})"),
                bucket=attributes.get("bucketId", ""),
                generation=int(attributes.get("objectGeneration", "0") or 0),
                size=0,
                event_time=message.publish_time,
                reader=self.reader,
            )
        attempts = attributes.get(ATTEMPTS_ATTRIBUTE) or attributes.get(_PUBSUB_DELIVERY_COUNT)
        return DeadLetter(
            id=message.message_id,
            event=event,
            attempts=int(attempts or 0),
            error=attributes.get(ERROR_ATTRIBUTE) or _EXHAUSTED,
            dead_at=message.publish_time.astimezone(datetime.UTC),
        )


def _attempt(message: ReceivedMessage) -> int:
    # Pub/Sub reports attempts only with a dead-letter policy (which apply sets).
    return max(1, message.delivery_attempt)


def _truncate(text: str) -> str:
    return text.encode()[:_MAX_ERROR_BYTES].decode(errors="ignore")
