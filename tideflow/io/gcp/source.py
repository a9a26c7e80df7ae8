"""Pub/Sub as a tideflow ``Source``: leased, at-least-once delivery of Cloud Storage events.

Delivery guarantees:

- A background thread pulls (unary pull with a normal, long deadline: a pull cut short
  by a short deadline can lease messages that never arrive, stranding them for an ack
  deadline and spending a delivery attempt) and keeps at most ``max_outstanding``
  messages leased by this process, buffered or handed out (flow control). ``pull``
  hands out what the thread buffered. A message is leased for the subscription's ack
  deadline. While it waits in the buffer, a second thread renews its lease once half of
  it has passed (as Google's own subscriber does for the messages it holds), so slow
  replicas or a long warehouse outage never let buffered messages expire, be delivered
  elsewhere and spend attempts. Once handed out, ``extend`` pushes the lease back while a
  replica works (also only once half of the lease has passed, so a frequent heartbeat
  costs no calls). A failed renewal is logged, never fatal: the message then comes back
  after its lease, and rows are idempotent.
- ``ack`` after the sink committed. A message whose lease ran out (a crashed replica or
  run process) is redelivered by Pub/Sub; rows are idempotent on the object identity.
- ``close`` hands the buffered messages back at once (lease 0), waits for the pull in
  flight and hands back what it brings too, and only then closes the channel: a call
  cancelled by the close would strand what Pub/Sub had leased to it for an ack deadline.
  A pull that brings messages answers at once; one still open after
  ``CLOSE_WAIT_SECONDS`` (2 s) is idle (Pub/Sub holds an empty pull until its deadline)
  and is cut, which strands nothing unless a message reaches it in that very instant.
- ``nack`` of a retryable failure hands the message back after a growing delay
  (``retry_min_seconds`` doubled per attempt, at most ``retry_max_seconds``: its lease
  is set to that), so a short outage of the sink does not burn every attempt in
  seconds; the subscription's retry policy backs off the same way for expired leases.
  When the attempts reach ``max_attempts``, or the failure is not retryable, the source
  publishes the message to the dead-letter topic with its error (attributes
  ``tideflow_error``, ``tideflow_attempts``) and then acks it; a crash between the two
  can leave a duplicate dead letter, never a lost one. If that publish fails, the
  message is handed back (and its flow-control slot freed) and the error is raised.
- Pub/Sub's own dead-letter policy (after ``max(5, max_attempts)`` deliveries) catches the
  messages no consumer ever finished; their error reads "delivery attempts exhausted".
- A message that is not a readable Cloud Storage notification is dead-lettered at once;
  notifications of other event types are acked and skipped.

What failed is recorded by the runtime in the table's failure log (``nack`` returns True
when it dead-lettered), so pages and status never read the queue. Only the
``tideflow dead-letters`` commands do, through ``PubSubDeadLetters``: Pub/Sub has no way
to browse a subscription, so they pull up to ``scan_limit`` (default 1,000) dead letters
and hand them straight back, until a pull comes back empty. Each pull has a 10 s deadline
(a pull cut short can lease letters that never arrive, hiding them for a minute), so a
scan takes about 10 s even of an empty subscription. Limits: a scan sees at most
``scan_limit`` of them, Pub/Sub may return fewer than are stored, and dead letters
expire with the subscription's retention. ``retry`` republishes to the stream's topic
(so every subscription of that topic receives it again) and acks the dead letter.

``stats()`` counts this process's leases and acks since it started; the backlog (and
its oldest message's age) comes from Cloud Monitoring (``SubscriptionBacklog``: a minute
or more late, leased messages included), since the Pub/Sub API does not report it; None
where it cannot be read (the emulator, no ``roles/monitoring.viewer``).
"""

from __future__ import annotations

import builtins
import collections
import contextlib
import datetime
import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from tideflow.exceptions import SourceError
from tideflow.io.dead_letters import (
    ATTEMPTS_ATTRIBUTE,
    ATTEMPTS_EXHAUSTED,
    ERROR_ATTRIBUTE,
    dead_letter_attributes,
)
from tideflow.io.gcp.errors import translated
from tideflow.io.gcp.monitoring import SubscriptionBacklog
from tideflow.io.gcp.notifications import (
    GCSFileChangeEvent,
    MalformedNotificationError,
    parse_notification,
)
from tideflow.io.gcp.transport import PubSubTransport, ReceivedMessage
from tideflow.io.strategies import DeadLetterQueue, Source
from tideflow.types import DeadLetter, Delivery, ObjectReader, SourceStats

logger = logging.getLogger("tideflow.gcp")

_PUBSUB_DELIVERY_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount"
_ADDED_PREFIXES = ("tideflow_", "CloudPubSubDeadLetterSource")
_MAX_LEASE_SECONDS = 600
# A dead-letter scan's pull deadline: a pull cut short can lease messages that never
# arrive, hiding them for the ack deadline (the scan stops at the first empty answer).
SCAN_TIMEOUT_SECONDS = 10.0
# How long ``close`` waits for the pull in flight before it closes the channel anyway: a
# pull that brings messages answers at once, an idle one is held until its deadline.
CLOSE_WAIT_SECONDS = 2.0


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
        lease_seconds: float = 60.0,
        retry_min_seconds: float = 10.0,
        retry_max_seconds: float = 600.0,
        pull_deadline: float = 60.0,
        backlog: SubscriptionBacklog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pubsub = pubsub
        self.subscription = subscription
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        self.dead_letter_subscription = dead_letter_subscription
        self.reader = reader
        self.max_attempts = max_attempts
        self.max_outstanding = max_outstanding
        self.lease_seconds = lease_seconds
        self.retry_min_seconds = retry_min_seconds
        self.retry_max_seconds = retry_max_seconds
        self.pull_deadline = pull_deadline
        self.backlog = backlog
        self.clock = clock
        # Handed out and not yet settled.
        self._leased: dict[str, ReceivedMessage] = {}
        # Pulled by the thread, not yet handed out.
        self._buffer: collections.deque[ReceivedMessage] = collections.deque()
        # When the lease of each message held (buffered or handed out) runs out, by ``clock``.
        self._lease_until: dict[str, float] = {}
        self._pull_error: SourceError | None = None
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._closing = threading.Event()
        self._done = 0
        self._room = threading.Condition()

    # -- delivery --------------------------------------------------------------------------

    def _outstanding(self) -> int:
        return len(self._leased) + len(self._buffer)

    def _start_threads(self) -> None:
        if not self._threads and not self._closed:
            self._threads = [
                threading.Thread(target=self._pull_forever, name="tideflow-pubsub-pull"),
                threading.Thread(target=self._renew_forever, name="tideflow-pubsub-lease"),
            ]
            for thread in self._threads:
                thread.daemon = True
                thread.start()

    def _pull_forever(self) -> None:
        """Keep the buffer filled up to ``max_outstanding`` leased messages; once closed,
        hand back at once what the last pull brought."""
        backoff = 0.5
        while (wanted := self._room_to_pull()) is not None:
            try:
                received = self._pull(wanted)
            except SourceError as exc:
                if not self._pull_failed(exc, pause=backoff):
                    return
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            if not self._buffered(received):
                self._hand_back([m.ack_id for m in received], "pulled while closing")
                return

    def _room_to_pull(self) -> int | None:
        """How many messages the next pull may lease, once there is room; None once closed."""
        with self._room:
            while not self._closed and self._outstanding() >= self.max_outstanding:
                self._room.wait()
            return None if self._closed else self.max_outstanding - self._outstanding()

    def _pull(self, wanted: int) -> list[ReceivedMessage]:
        try:
            with self._translated("pull from", self.subscription):
                return self.pubsub.pull(
                    self.subscription, max_messages=wanted, timeout=self.pull_deadline
                )
        except SourceError:
            raise
        except Exception as exc:  # a bug must not silently end the pulling
            raise SourceError(
                f"cannot pull from {self.subscription}: {type(exc).__name__}: {exc}"
            ) from exc

    def _pull_failed(self, error: SourceError, *, pause: float) -> bool:
        """Keep ``error`` for the next ``pull`` and wait ``pause`` seconds; False once closed."""
        with self._room:
            if self._closed:
                return False
            self._pull_error = error
            self._room.notify_all()
            self._room.wait(pause)
        return True

    def _buffered(self, received: list[ReceivedMessage]) -> bool:
        """Put what a pull brought in the buffer; False (nothing taken) once closed."""
        leased_until = self.clock() + self.lease_seconds
        with self._room:
            if self._closed:
                return False
            self._pull_error = None
            self._buffer.extend(received)
            self._lease_until.update((m.ack_id, leased_until) for m in received)
            self._room.notify_all()
        return True

    def _hand_back(self, ack_ids: Sequence[str], what: str) -> None:
        """Release messages now (their lease runs out by itself if that fails)."""
        if not ack_ids:
            return
        try:
            self._release(ack_ids)
        except SourceError as exc:
            logger.warning("cannot hand back %d message(s) %s: %s", len(ack_ids), what, exc)

    def _renew_forever(self) -> None:
        """Renew the leases of buffered messages once half of a lease has passed."""
        lease = _lease(self.lease_seconds)
        while not self._closing.wait(lease / 4):
            now = self.clock()
            with self._room:
                due = self._half_gone([m.ack_id for m in self._buffer], lease, now)
            if not due:
                continue
            try:
                self._renew(due, lease, now)
            except SourceError as exc:
                logger.warning(
                    "cannot renew the leases of %d buffered message(s) (they come back "
                    "after their lease): %s",
                    len(due),
                    exc,
                )

    def _half_gone(self, ack_ids: Sequence[str], lease: int, now: float) -> list[str]:
        """Those of ``ack_ids`` with less than half of ``lease`` left (call holding _room)."""
        return [i for i in ack_ids if self._lease_until.get(i, 0.0) - now < lease / 2]

    def _renew(self, ack_ids: Sequence[str], lease: int, now: float) -> None:
        with self._translated("extend leases on", self.subscription):
            self.pubsub.modify_ack_deadline(self.subscription, ack_ids, seconds=lease)
        with self._room:
            for ack_id in ack_ids:
                if ack_id in self._lease_until:
                    self._lease_until[ack_id] = now + lease

    def pull(self, *, max_messages: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        with self._room:
            self._start_threads()
            while not self._buffer:
                if self._pull_error is not None:
                    error, self._pull_error = self._pull_error, None
                    raise error
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return []
                self._room.wait(remaining)
            taken = [self._buffer.popleft() for _ in range(min(max_messages, len(self._buffer)))]
            for message in taken:
                self._leased[message.ack_id] = message
        # Their leases were kept alive in the buffer; ``extend`` takes over from here.
        deliveries: list[Delivery] = []
        failure: SourceError | None = None
        for message in taken:
            try:
                delivery = self._delivery(message)
            except SourceError as exc:
                # The dead-letter publish failed: the message went back; carry on with the rest.
                failure = failure or exc
                continue
            if delivery is not None:
                deliveries.append(delivery)
        if failure is not None and not deliveries:
            raise failure
        if failure is not None:
            logger.error("%s", failure)
        return deliveries

    def _delivery(self, message: ReceivedMessage) -> Delivery | None:
        try:
            event = parse_notification(
                attributes=message.attributes, data=message.data, reader=self.reader
            )
        except MalformedNotificationError as exc:
            logger.error("message %s is dead-lettered: %s", message.message_id, exc)
            self._settle_dead(message, error=str(exc), attempts=_attempt(message))
            return None
        if event is None:
            self._forget([message.ack_id])
            self._acknowledge([message.ack_id])
            return None
        return Delivery(ack_id=message.ack_id, event=event, attempt=_attempt(message))

    def _forget(self, ack_ids: Sequence[str]) -> list[ReceivedMessage]:
        with self._room:
            found = [m for m in (self._leased.pop(i, None) for i in ack_ids) if m is not None]
            for ack_id in ack_ids:
                self._lease_until.pop(ack_id, None)
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

    def retry_delay(self, attempt: int) -> int:
        """Seconds before a message that failed its ``attempt``-th delivery comes back."""
        delay = self.retry_min_seconds * 2 ** max(0, attempt - 1)
        return round(min(self.retry_max_seconds, delay, _MAX_LEASE_SECONDS))

    def nack(self, ack_id: str, *, error: str, retryable: bool = True) -> bool:
        with self._room:
            message = self._leased.get(ack_id)
        if message is None:
            # Not leased here (already acked, or released at shutdown): nothing to hand back.
            logger.debug("nack of unknown ack id ignored: %s", ack_id)
            return False
        attempts = _attempt(message)
        if retryable and attempts < self.max_attempts:
            self._forget([ack_id])
            with self._translated("hand back messages of", self.subscription):
                self.pubsub.modify_ack_deadline(
                    self.subscription, [ack_id], seconds=self.retry_delay(attempts)
                )
            return False
        self._settle_dead(message, error=error, attempts=attempts)
        return True

    def _settle_dead(self, message: ReceivedMessage, *, error: str, attempts: int) -> None:
        """Dead-letter ``message`` and ack it; if the publish fails, hand it back."""
        try:
            self._dead_letter(message, error=error, attempts=attempts)
        except SourceError:
            self._forget([message.ack_id])
            with contextlib.suppress(SourceError):  # Else its lease runs out by itself.
                self._release([message.ack_id])
            raise
        self._forget([message.ack_id])
        self._acknowledge([message.ack_id])

    def _release(self, ack_ids: Sequence[str]) -> None:
        with self._translated("hand back messages of", self.subscription):
            self.pubsub.modify_ack_deadline(self.subscription, list(ack_ids), seconds=0)

    def extend(self, ack_ids: Sequence[str], *, seconds: float) -> None:
        lease = _lease(seconds)
        now = self.clock()
        with self._room:
            # Only leases with less than half of ``lease`` left: a heartbeat every few
            # seconds then costs one call per half lease, not one per beat.
            due = self._half_gone([i for i in ack_ids if i in self._leased], lease, now)
        if due:
            self._renew(due, lease, now)

    def release_all(self) -> int:
        with self._room:
            ack_ids = list(self._leased) + [m.ack_id for m in self._buffer]
            self._buffer.clear()
        self._forget(ack_ids)
        if ack_ids:
            self._release(ack_ids)
        return len(ack_ids)

    def close(self) -> None:
        with self._room:
            self._closed = True
            buffered = [m.ack_id for m in self._buffer]
            self._buffer.clear()
            for ack_id in buffered:
                self._lease_until.pop(ack_id, None)
            self._room.notify_all()
        self._closing.set()
        self._hand_back(buffered, "buffered")
        # The pull in flight ends first, and the puller hands back what it brought: closing
        # the channel under it would cancel the call, and what Pub/Sub had leased to it
        # would come back only after its ack deadline.
        for thread in self._threads:
            thread.join(CLOSE_WAIT_SECONDS)
        self.pubsub.close()

    def _dead_letter(self, message: ReceivedMessage, *, error: str, attempts: int) -> None:
        attributes = {
            **message.attributes,
            **dead_letter_attributes(error=error, attempts=attempts, message_id=message.message_id),
        }
        with _translated("publish a dead letter to", self.dead_letter_topic):
            self.pubsub.publish(self.dead_letter_topic, message.data, attributes)

    def _translated(self, action: str, resource: str) -> AbstractContextManager[None]:
        return _translated(action, resource)

    def stats(self) -> SourceStats:
        pending, oldest = self.backlog.read() if self.backlog is not None else (None, None)
        with self._room:
            in_flight, done = len(self._leased), self._done
        return SourceStats(
            pending=pending, in_flight=in_flight, done=done, oldest_pending_seconds=oldest
        )


def _translated(action: str, resource: str) -> AbstractContextManager[None]:
    permission = (
        "pubsub.topics.publish" if "/topics/" in resource else "pubsub.subscriptions.consume"
    )
    return translated(resource=resource, action=action, error=SourceError, permission=permission)


class PubSubDeadLetters(DeadLetterQueue):
    """The dead-letter subscription, read by scanning (see the module's docstring)."""

    def __init__(
        self,
        pubsub: PubSubTransport,
        *,
        topic: str,
        dead_letter_subscription: str,
        reader: ObjectReader | None,
        scan_limit: int = 1000,
        scan_timeout: float = SCAN_TIMEOUT_SECONDS,
    ) -> None:
        self.pubsub = pubsub
        self.topic = topic
        self.dead_letter_subscription = dead_letter_subscription
        self.reader = reader
        self.scan_limit = scan_limit
        self.scan_timeout = scan_timeout
        self._scan_lock = threading.Lock()
        self._translated = _translated

    def list(self, *, limit: int = 100) -> list[DeadLetter]:
        with self._scan_lock:
            _, messages = self._scan(accept=lambda _: False)
        letters = sorted((self._letter(m) for m in messages), key=lambda d: d.dead_at, reverse=True)
        return letters[:limit]

    def count(self) -> int:
        with self._scan_lock:
            _, messages = self._scan(accept=lambda _: False)
        return len(messages)

    def retry(self, ids: Sequence[str] | None = None) -> int:
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
        return len(retried)

    def _scan(
        self, *, accept: Callable[[ReceivedMessage], bool]
    ) -> tuple[builtins.list[ReceivedMessage], builtins.list[ReceivedMessage]]:
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
                version=str(int(attributes.get("objectGeneration", "0") or 0)),
                size=0,
                event_time=message.publish_time,
                reader=self.reader,
            )
        attempts = attributes.get(ATTEMPTS_ATTRIBUTE) or attributes.get(_PUBSUB_DELIVERY_COUNT)
        return DeadLetter(
            id=message.message_id,
            event=event,
            attempts=int(attempts or 0),
            error=attributes.get(ERROR_ATTRIBUTE) or ATTEMPTS_EXHAUSTED,
            dead_at=message.publish_time.astimezone(datetime.UTC),
        )


def _lease(seconds: float) -> int:
    """A lease Pub/Sub accepts: whole seconds, 1 to 600."""
    return max(1, min(_MAX_LEASE_SECONDS, round(seconds)))


def _attempt(message: ReceivedMessage) -> int:
    # Pub/Sub reports attempts only with a dead-letter policy (which apply sets).
    return max(1, message.delivery_attempt)
