"""One SQS queue by name: its URL, looked up once, and the calls tideflow makes on it.

``SQSSource`` holds the stream's queue and its dead-letter queue as two of these,
``SQSDeadLetterQueue`` the dead-letter queue and the queue it sends letters back to, and
the stream's parts and replay use them at apply time. Batch calls go ten entries at a
time (SQS's most); every call's errors are translated into ``error`` (``SourceError`` at
run time, ``PrimitiveError`` for plan and apply), naming the queue and the IAM action.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from tideflow.exceptions import SourceError, TideflowError
from tideflow.io.aws.clients import client
from tideflow.io.aws.errors import translated

logger = logging.getLogger("tideflow.aws")

MISSING_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
# The message attributes and counts tideflow reads.
SYSTEM_ATTRIBUTES = ["ApproximateReceiveCount", "SentTimestamp"]
COUNTS = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
_BATCH = 10


class SqsQueue:
    """An SQS queue in ``region``; its client is the process's shared one."""

    def __init__(self, name: str, *, region: str, error: type[TideflowError] = SourceError) -> None:
        self.name = name
        self.region = region
        self.error = error
        self._url: str | None = None

    def sqs(self) -> Any:
        return client("sqs", self.region)

    def translated(
        self, action: str, permission: str, *, gone_is_fine: bool = False
    ) -> AbstractContextManager[None]:
        """A call on the queue; with ``gone_is_fine``, a missing queue ends it quietly."""
        return translated(
            resource=f"SQS queue {self.name}",
            action=action,
            error=self.error,
            permission=permission,
            cases={MISSING_QUEUE: None} if gone_is_fine else None,
        )

    def find_url(self) -> str | None:
        """The queue's URL; None when it does not exist."""
        if self._url is None:
            with self.translated("look up", "sqs:GetQueueUrl", gone_is_fine=True):
                self._url = str(self.sqs().get_queue_url(QueueName=self.name)["QueueUrl"])
        return self._url

    def url(self) -> str:
        """The queue's URL; ``error`` when it does not exist."""
        found = self.find_url()
        if found is None:
            raise self.error(f"SQS queue {self.name} does not exist: run tideflow apply")
        return found

    def receive(self, *, wanted: int, wait: int, visibility: int) -> list[dict[str, Any]]:
        """Up to ``wanted`` messages (10 at most), long-polling ``wait`` seconds, hidden for
        ``visibility`` seconds, with their attributes."""
        with self.translated("receive from", "sqs:ReceiveMessage"):
            response = self.sqs().receive_message(
                QueueUrl=self.url(),
                MaxNumberOfMessages=wanted,
                WaitTimeSeconds=wait,
                VisibilityTimeout=visibility,
                MessageSystemAttributeNames=SYSTEM_ATTRIBUTES,
                MessageAttributeNames=["All"],
            )
        return list(response.get("Messages", []))

    def send(self, body: str, attributes: dict[str, Any] | None = None) -> None:
        with self.translated("send a message to", "sqs:SendMessage"):
            self.sqs().send_message(
                QueueUrl=self.url(), MessageBody=body, MessageAttributes=attributes or {}
            )

    def send_all(self, bodies: Sequence[str]) -> int:
        """Send ``bodies``, ten per request; how many SQS took (``error`` if it refused any)."""
        sent = 0
        for start in range(0, len(bodies), _BATCH):
            entries = [
                {"Id": str(n), "MessageBody": body}
                for n, body in enumerate(bodies[start : start + _BATCH])
            ]
            with self.translated("send messages to", "sqs:SendMessage"):
                answer = self.sqs().send_message_batch(QueueUrl=self.url(), Entries=entries)
            if answer.get("Failed"):
                failure = answer["Failed"][0]
                raise self.error(
                    f"SQS queue {self.name} refused {len(answer['Failed'])} message(s): "
                    f"{failure.get('Code')}: {failure.get('Message')}"
                )
            sent += len(answer.get("Successful", []))
        return sent

    def change_visibility(self, receipts: Sequence[str], seconds: int) -> None:
        """Hide received messages for ``seconds`` more (0: hand them back now)."""
        self._batched(
            "change_message_visibility_batch",
            [{"ReceiptHandle": r, "VisibilityTimeout": seconds} for r in receipts],
            action="change message visibility in",
            permission="sqs:ChangeMessageVisibility",
        )

    def delete(self, receipts: Sequence[str]) -> int:
        """Delete received messages; how many SQS deleted."""
        return self._batched(
            "delete_message_batch",
            [{"ReceiptHandle": r} for r in receipts],
            action="delete messages from",
            permission="sqs:DeleteMessage",
        )

    def _batched(
        self, call: str, entries: Sequence[dict[str, Any]], *, action: str, permission: str
    ) -> int:
        """``call`` on ``entries``, ten per request; how many SQS took. What it refuses is
        mostly receipts that expired: those messages come back by themselves."""
        done = 0
        for start in range(0, len(entries), _BATCH):
            batch = [{"Id": str(i), **e} for i, e in enumerate(entries[start : start + _BATCH])]
            with self.translated(action, permission):
                response = getattr(self.sqs(), call)(QueueUrl=self.url(), Entries=batch)
            for failed in response.get("Failed", []):
                logger.warning("SQS refused to %s: %s", action, failed.get("Message", failed))
            done += len(response.get("Successful", []))
        return done

    def counts(self) -> tuple[int, int]:
        """SQS's approximate (visible, in flight) message counts."""
        with self.translated("read the counts of", "sqs:GetQueueAttributes"):
            attributes = self.sqs().get_queue_attributes(
                QueueUrl=self.url(), AttributeNames=COUNTS
            )["Attributes"]
        return int(attributes.get(COUNTS[0], 0)), int(attributes.get(COUNTS[1], 0))
