"""Cloud Storage's Pub/Sub notifications, parsed into file-change events.

A notification configuration with payload format ``JSON_API_V1`` publishes one Pub/Sub
message per object change (documented at cloud.google.com/storage/docs/pubsub-notifications):

- attributes: ``notificationConfig``, ``eventType`` (``OBJECT_FINALIZE`` when an object
  is created or replaced), ``payloadFormat``, ``bucketId``, ``objectId``,
  ``objectGeneration``, ``eventTime`` (RFC 3339), and ``overwroteGeneration`` when the
  upload replaced an older generation;
- data: the object's JSON API resource (``name``, ``bucket``, ``generation``, ``size``,
  ``contentType``, ``timeCreated``, ``metadata`` ...), numbers as strings.

Cloud Storage sends each notification at least once; ``(bucket, objectId,
objectGeneration)`` identifies the object version, so duplicates map to the same event.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

from tideflow.exceptions import MalformedEventError
from tideflow.types import ObjectReader
from tideflow.types.gcp import GCSFileChangeEvent

OBJECT_FINALIZE = "OBJECT_FINALIZE"
JSON_API_V1 = "JSON_API_V1"


class MalformedNotificationError(MalformedEventError):
    """A Pub/Sub message is not a Cloud Storage notification tideflow can read."""


def parse_notification(
    *,
    attributes: Mapping[str, str],
    data: bytes,
    reader: ObjectReader | None,
) -> GCSFileChangeEvent | None:
    """The event a notification describes; None for event types other than OBJECT_FINALIZE."""
    event_type = attributes.get("eventType")
    if event_type is None:
        raise MalformedNotificationError("message has no eventType attribute")
    if event_type != OBJECT_FINALIZE:
        return None
    if attributes.get("payloadFormat", JSON_API_V1) != JSON_API_V1:
        raise MalformedNotificationError(
            f"payload format {attributes.get('payloadFormat')!r} carries no object resource; "
            f"the notification must use {JSON_API_V1}"
        )
    try:
        resource = json.loads(data) if data else {}
    except ValueError as exc:
        raise MalformedNotificationError(f"payload is not JSON: {exc}") from exc
    if not isinstance(resource, dict):
        raise MalformedNotificationError("payload is not a JSON object")
    bucket = attributes.get("bucketId") or resource.get("bucket")
    key = attributes.get("objectId") or resource.get("name")
    generation = attributes.get("objectGeneration") or resource.get("generation")
    if not bucket or not key or not generation:
        raise MalformedNotificationError("notification names no bucket, object or generation")
    metadata: dict[str, Any] = dict(resource.get("metadata") or {})
    if resource.get("contentType"):
        metadata["content_type"] = resource["contentType"]
    try:
        return GCSFileChangeEvent(
            file_path=key,
            bucket=bucket,
            version=str(int(generation)),
            size=int(resource.get("size") or 0),
            event_time=_timestamp(
                attributes.get("eventTime") or resource.get("updated") or resource["timeCreated"]
            ),
            metadata=metadata,
            reader=reader,
        )
    except (KeyError, ValueError) as exc:
        raise MalformedNotificationError(f"unreadable notification field: {exc}") from exc


def finalize_message(
    resource: Mapping[str, Any], *, notification_config: str
) -> tuple[bytes, dict[str, str]]:
    """The message Cloud Storage publishes when the object ``resource`` is finalized."""
    attributes = {
        "notificationConfig": notification_config,
        "eventType": OBJECT_FINALIZE,
        "payloadFormat": JSON_API_V1,
        "bucketId": str(resource["bucket"]),
        "objectId": str(resource["name"]),
        "objectGeneration": str(resource["generation"]),
        "eventTime": str(resource.get("updated") or resource.get("timeCreated") or _now()),
    }
    return json.dumps(dict(resource)).encode(), attributes


def _timestamp(text: str) -> datetime.datetime:
    value = datetime.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
