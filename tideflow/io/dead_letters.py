"""What a source writes on a message it dead-letters, on queues that keep attributes (SQS,
Pub/Sub): the error on one line, the attempts and the source message's id. A dead letter
the queue moved by itself (its redrive or dead-letter policy: no consumer ever finished
it) has none of them, and reads ``ATTEMPTS_EXHAUSTED``."""

from __future__ import annotations

from tideflow.io.errors import one_line

ERROR_ATTRIBUTE = "tideflow_error"
ATTEMPTS_ATTRIBUTE = "tideflow_attempts"
SOURCE_MESSAGE_ATTRIBUTE = "tideflow_source_message_id"
ATTEMPTS_EXHAUSTED = (
    "delivery attempts exhausted: the consumer never finished it (crash or timeout)"
)
# Pub/Sub attribute values are limited to 1,024 bytes.
MAX_ERROR_BYTES = 1000


def dead_letter_attributes(*, error: str, attempts: int, message_id: str) -> dict[str, str]:
    """The attributes a dead letter carries (its error cut to ``MAX_ERROR_BYTES``)."""
    cut = one_line(error, limit=MAX_ERROR_BYTES).encode()[:MAX_ERROR_BYTES]
    return {
        ERROR_ATTRIBUTE: cut.decode(errors="ignore") or "failed",
        ATTEMPTS_ATTRIBUTE: str(attempts),
        SOURCE_MESSAGE_ATTRIBUTE: message_id,
    }
