"""A bucket's file-change stream on Google Cloud: Storage notifications into Pub/Sub.

``GCSFileChangeStream(gcs_bucket=bucket)`` manages, in apply order:

1. the topic ``<stream_id>`` and the IAM grant that lets the project's Cloud Storage
   service agent publish to it (``roles/pubsub.publisher``);
2. the bucket's notification configuration: OBJECT_FINALIZE, ``JSON_API_V1`` payload;
3. the dead-letter topic and its subscription ``<stream_id>-dead-letter``;
4. the consumers' subscription ``<stream_id>``: ack deadline ``lease_seconds``, never
   expires, dead-letter policy after ``max(5, max_attempts)`` deliveries (Pub/Sub's floor);
5. the grants Pub/Sub's own service agent needs to dead-letter: publisher on the
   dead-letter topic, subscriber on the subscription.

``destroy`` removes the notification, the subscriptions and the topics (their IAM
bindings go with them). ``stream_id`` defaults to ``<bucket>-changes``.

Options: ``max_attempts`` (default 5, 1 to 100) deliveries before an event is
dead-lettered; ``lease_seconds`` (default 60, 10 to 600) ack deadline, extended while a
replica works; ``max_outstanding`` (default 100) events leased by one run process at once;
``retry_min_seconds``/``retry_max_seconds`` (default 10 and 600, 0 to 600): the growing
delay before a failed event is tried again (the subscription's retry policy, and the
source's own nack delay). The dead-letter subscription keeps dead letters 31 days.
Settings: ``GcpSettings`` (``tideflow.io.gcp.settings``; ``PUBSUB_EMULATOR_HOST`` among them).

Under emulators: with ``PUBSUB_EMULATOR_HOST`` set, apply skips the IAM grants (the
emulator has no IAM) and keeps dead letters 7 days (its limit); with
``STORAGE_EMULATOR_HOST`` set, apply leaves the bucket notification to the Storage
emulator (fake-gcs-server publishes OBJECT_FINALIZE itself, to the topic named by its
``-event.pubsub-topic`` flag). Each says so in one logged line. Transports passed in
explicitly (the tests' IAM and notification stand-ins) are always used in full (only
the 7-day retention still applies under ``PUBSUB_EMULATOR_HOST``).
Delivery guarantees: see ``tideflow.io.gcp.source``.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import ClassVar

from tideflow.exceptions import ConfigError, PrimitiveError
from tideflow.io.composite import CompositePrimitive, Part
from tideflow.io.gcp.errors import admin
from tideflow.io.gcp.google_transport import GoogleNotificationTransport, GooglePubSubTransport
from tideflow.io.gcp.monitoring import SubscriptionBacklog, metric_client
from tideflow.io.gcp.notifications import finalize_message
from tideflow.io.gcp.settings import PUBSUB_EMULATOR_ENV, STORAGE_EMULATOR_ENV, GcpSettings
from tideflow.io.gcp.source import PubSubDeadLetters, PubSubSource
from tideflow.io.gcp.storage import GCSBucket
from tideflow.io.gcp.stream_parts import BucketNotification, IamGrant, Subscription, Topic
from tideflow.io.gcp.transport import NotificationTransport, PubSubTransport, SubscriptionConfig
from tideflow.io.options import OptionCheck, seconds, whole_number
from tideflow.io.primitive import PlanAction, PlanStep, SourcePrimitive
from tideflow.io.strategies import StoredObject

PUBLISHER = "roles/pubsub.publisher"
SUBSCRIBER = "roles/pubsub.subscriber"
# Pub/Sub's dead-letter policy takes 5 to 100 attempts.
MIN_POLICY_ATTEMPTS, MAX_ATTEMPTS = 5, 100
DEAD_LETTER_RETENTION_SECONDS = 31 * 24 * 3600
# Google's Pub/Sub emulator refuses subscription retention above 7 days.
EMULATOR_RETENTION_SECONDS = 7 * 24 * 3600
# Replayed events published per batch (Pub/Sub's client sends up to 100 per request).
REPLAY_BATCH = 100
logger = logging.getLogger("tideflow.gcp")
_RESOURCE_ID = re.compile(r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}")
_STORAGE_AGENT = re.compile(r"service-(\d+)@gs-project-accounts\.iam\.gserviceaccount\.com")


class GCSFileChangeStream(CompositePrimitive, SourcePrimitive):
    """Object-created events of a ``GCSBucket``, delivered through Pub/Sub."""

    option_checks: ClassVar[Mapping[str, OptionCheck]] = {
        "max_attempts": whole_number(1, MAX_ATTEMPTS),
        "lease_seconds": seconds(10, 600),
        "max_outstanding": whole_number(1, 1_000_000),
        "retry_min_seconds": seconds(0, 600),
        "retry_max_seconds": seconds(0, 600),
    }
    max_attempts: int
    lease_seconds: float
    max_outstanding: int
    retry_min_seconds: float
    retry_max_seconds: float

    def __init__(
        self,
        gcs_bucket: GCSBucket,
        *,
        stream_id: str | None = None,
        max_attempts: int = 5,
        lease_seconds: float = 60.0,
        max_outstanding: int = 100,
        retry_min_seconds: float = 10.0,
        retry_max_seconds: float = 600.0,
        pubsub: PubSubTransport | None = None,
        notifications: NotificationTransport | None = None,
        settings: GcpSettings | None = None,
    ) -> None:
        self.gcs_bucket = gcs_bucket
        self.settings = settings or GcpSettings.from_environ()
        name = gcs_bucket.bucket_name
        self.stream_id = stream_id or (
            f"{name}-changes" if name[0].isalpha() else f"gcs-{name}-changes"
        )
        if not _RESOURCE_ID.fullmatch(self.stream_id) or self.stream_id.startswith("goog"):
            raise ConfigError(
                f"stream_id {self.stream_id!r} is not a valid Pub/Sub name (a letter, then 2 to "
                "254 letters, digits or -_.~+%, not starting with 'goog'); pass stream_id="
            )
        self.options(
            max_attempts=max_attempts,
            lease_seconds=lease_seconds,
            max_outstanding=max_outstanding,
            retry_min_seconds=retry_min_seconds,
            retry_max_seconds=retry_max_seconds,
        )
        self._pubsub = pubsub
        self._notifications = notifications
        # Only Google transports built here follow the emulator variables.
        self._given = (pubsub is not None, notifications is not None)
        self._agents: dict[str, str] = {}
        self._said: set[str] = set()
        self._lock = threading.Lock()

    def options_problem(self) -> str | None:
        if self.retry_min_seconds > self.retry_max_seconds:
            return (
                "retry_min_seconds must not be above retry_max_seconds; got "
                f"{self.retry_min_seconds:g} and {self.retry_max_seconds:g}"
            )
        return None

    # -- emulators -----------------------------------------------------------------------

    @property
    def pubsub_emulated(self) -> bool:
        """Google's Pub/Sub emulator (no IAM) serves this stream."""
        return not self._given[0] and bool(self.settings.pubsub_emulator_host)

    @property
    def storage_emulated(self) -> bool:
        """A Storage emulator that publishes object events itself serves this stream."""
        return not self._given[1] and bool(self.settings.storage_emulator_host)

    def _say_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._said:
            self._said.add(key)
            logger.info(message, *args)

    # -- names and transports ------------------------------------------------------------

    @property
    def project(self) -> str:
        return self.gcs_bucket.project_id

    @property
    def topic(self) -> str:
        return f"projects/{self.project}/topics/{self.stream_id}"

    @property
    def subscription(self) -> str:
        return f"projects/{self.project}/subscriptions/{self.stream_id}"

    @property
    def dead_letter_topic(self) -> str:
        return f"projects/{self.project}/topics/{self.stream_id}-dead-letter"

    @property
    def dead_letter_subscription(self) -> str:
        return f"projects/{self.project}/subscriptions/{self.stream_id}-dead-letter"

    def _transports(self) -> tuple[PubSubTransport, NotificationTransport]:
        with self._lock:
            if self._pubsub is None or self._notifications is None:
                pubsub: PubSubTransport
                notifications: NotificationTransport
                pubsub = GooglePubSubTransport(self.settings)
                notifications = GoogleNotificationTransport(self.gcs_bucket.storage_client)
                self._pubsub = self._pubsub or pubsub
                self._notifications = self._notifications or notifications
            return self._pubsub, self._notifications

    def pubsub(self) -> PubSubTransport:
        return self._transports()[0]

    def notifications(self) -> NotificationTransport:
        return self._transports()[1]

    def subscription_config(self) -> SubscriptionConfig:
        return SubscriptionConfig(
            name=self.subscription,
            topic=self.topic,
            ack_deadline_seconds=int(self.lease_seconds),
            dead_letter_topic=self.dead_letter_topic,
            max_delivery_attempts=max(MIN_POLICY_ATTEMPTS, self.max_attempts),
            retry_min_seconds=round(self.retry_min_seconds),
            retry_max_seconds=round(self.retry_max_seconds),
        )

    def dead_letter_config(self) -> SubscriptionConfig:
        # Listing dead letters leases them briefly; the longest deadline is not needed.
        return SubscriptionConfig(
            name=self.dead_letter_subscription,
            topic=self.dead_letter_topic,
            ack_deadline_seconds=60,
            # Also for a transport passed in: under the variable, it talks to the emulator.
            retention_seconds=(
                EMULATOR_RETENTION_SECONDS
                if self.settings.pubsub_emulator_host
                else DEAD_LETTER_RETENTION_SECONDS
            ),
        )

    def storage_agent(self) -> str:
        """``serviceAccount:`` member of the project's Cloud Storage service agent."""
        if "storage" not in self._agents:
            with admin(
                "look up the Cloud Storage service agent of",
                f"project {self.project}",
                "resourcemanager.projects.get",
            ):
                email = self.notifications().service_agent(self.project)
            self._agents["storage"] = f"serviceAccount:{email}"
        return self._agents["storage"]

    def pubsub_agent(self) -> str:
        """``serviceAccount:`` member of Pub/Sub's service agent, which moves dead letters."""
        # Both agents are named after the project number, which the storage agent reveals.
        found = _STORAGE_AGENT.search(self.storage_agent())
        if found is None:
            raise PrimitiveError(
                f"cannot derive the project number of {self.project} from its Cloud Storage "
                f"service agent {self.storage_agent()!r}"
            )
        return f"serviceAccount:service-{found.group(1)}@gcp-sa-pubsub.iam.gserviceaccount.com"

    # -- plan / apply / destroy ----------------------------------------------------------

    def primitive_id(self) -> str:
        return f"gcs-file-change-stream:{self.gcs_bucket.bucket_name}/{self.stream_id}"

    def depends_on(self) -> tuple[GCSBucket, ...]:
        return (self.gcs_bucket,)

    def parts(self) -> list[Part]:
        pubsub = self.pubsub()
        grants, notify = self._under_emulators()
        parts: list[Part] = [Topic(pubsub, self.topic)]
        if grants:
            parts.append(IamGrant(pubsub, self.topic, PUBLISHER, self.storage_agent))
        if notify:
            bucket = self.gcs_bucket.bucket_name
            notifications = self.notifications()
            parts.append(
                BucketNotification(notifications, bucket, self.topic, agent=self.storage_agent)
            )
        parts += [
            Topic(pubsub, self.dead_letter_topic),
            Subscription(pubsub, self.dead_letter_config()),
            Subscription(pubsub, self.subscription_config()),
        ]
        if grants:
            parts += [
                IamGrant(pubsub, self.dead_letter_topic, PUBLISHER, self.pubsub_agent),
                IamGrant(pubsub, self.subscription, SUBSCRIBER, self.pubsub_agent),
            ]
        return parts

    def _under_emulators(self) -> tuple[bool, bool]:
        """Whether apply grants IAM roles and manages the bucket notification; what the
        emulators leave out is said once."""
        if self.pubsub_emulated:
            self._say_once(
                "iam",
                "%s: %s is set: no IAM grants (the Pub/Sub emulator has no IAM; on Google "
                "Cloud apply grants the Storage and Pub/Sub service agents), dead letters "
                "kept 7 days (the emulator's limit)",
                self.stream_id,
                PUBSUB_EMULATOR_ENV,
            )
        if self.storage_emulated:
            self._say_once(
                "notification",
                "%s: %s is set: the bucket notification is left to the Storage emulator "
                "(start fake-gcs-server with -event.pubsub-topic %s -event.list finalize)",
                self.stream_id,
                STORAGE_EMULATOR_ENV,
                self.stream_id,
            )
        return not self.pubsub_emulated, not self.storage_emulated

    def plan_detail(self) -> str:
        return f"dead letter after {self.max_attempts} attempt(s), lease {self.lease_seconds:g}s"

    def check(self) -> PlanStep:
        """Whether the topic and the subscriptions exist, read with a consumer's rights.

        ``tideflow run --only consumers`` calls this instead of ``plan``: it reads no IAM
        policy and no notification configuration (both need admin rights).
        """
        self.check_options()
        pubsub = self.pubsub()
        children = [
            Topic(pubsub, self.topic).plan(),
            Subscription(pubsub, self.dead_letter_config()).plan(),
            Subscription(pubsub, self.subscription_config()).plan(),
        ]
        missing = [c for c in children if c.action is PlanAction.CREATE]
        action = PlanAction.CREATE if missing else PlanAction.NO_CHANGE
        detail = ", ".join(c.primitive_id for c in missing) + " missing" if missing else ""
        return self.step(action, detail, *children)

    def source(self) -> PubSubSource:
        self.check_options()
        backlog = None
        if self.pubsub_emulated:
            self._say_once(
                "monitoring",
                "the Pub/Sub emulator has no Cloud Monitoring: the backlog of %s is unknown",
                self.subscription,
            )
        elif not self._given[0]:  # a transport passed in by the caller: no Monitoring
            backlog = SubscriptionBacklog(
                self.subscription, client=functools.partial(metric_client, self.settings)
            )
        return PubSubSource(
            self.pubsub(),
            subscription=self.subscription,
            dead_letter_topic=self.dead_letter_topic,
            dead_letter_subscription=self.dead_letter_subscription,
            topic=self.topic,
            reader=self.gcs_bucket,
            max_attempts=self.max_attempts,
            max_outstanding=self.max_outstanding,
            lease_seconds=self.lease_seconds,
            retry_min_seconds=self.retry_min_seconds,
            retry_max_seconds=self.retry_max_seconds,
            backlog=backlog,
        )

    def dead_letter_queue(self) -> PubSubDeadLetters:
        return PubSubDeadLetters(
            self.pubsub(),
            topic=self.topic,
            dead_letter_subscription=self.dead_letter_subscription,
            reader=self.gcs_bucket,
        )

    def replay(self, objects: Iterable[StoredObject]) -> int:
        """See ``SourcePrimitive.replay``: publishes, to the stream's topic, the message Cloud
        Storage publishes when an object is finalized (same bucket, name, generation), so the
        subscription delivers it to the consumers like the original. Messages go out
        ``REPLAY_BATCH`` at a time, each batch waited for once."""
        pubsub = self.pubsub()
        count = 0
        remaining = iter(objects)
        while batch := list(itertools.islice(remaining, REPLAY_BATCH)):
            messages = [self._finalize_message(stored) for stored in batch]
            with admin("publish replayed events to", self.topic, "pubsub.topics.publish"):
                pubsub.publish_all(self.topic, messages)
            count += len(messages)
        return count

    def _finalize_message(self, stored: StoredObject) -> tuple[bytes, dict[str, str]]:
        resource = {
            "bucket": self.gcs_bucket.bucket_name,
            "name": stored.key,
            "generation": stored.version,
            "size": str(stored.size),
            "updated": stored.updated.isoformat(),
            "contentType": stored.content_type,
            "metadata": dict(stored.metadata),
        }
        return finalize_message(resource, notification_config="tideflow-replay")
