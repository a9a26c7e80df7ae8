"""S3 event notifications, as SQS delivers them, parsed into ``S3FileChangeEvent``s.

The message body is S3's documented JSON: ``{"Records": [{"eventName":
"ObjectCreated:Put", "eventTime": ..., "s3": {"bucket": {"name": ...}, "object": {"key":
..., "size": ..., "eTag": ..., "versionId": ..., "sequencer": ...}}}, ...]}``. One body can
hold several records. Keys are URL-encoded with ``+`` for spaces (``uploads/a+b.jpg`` is
``uploads/a b.jpg``). When a notification is configured S3 first sends an ``s3:TestEvent``
(``{"Event": "s3:TestEvent", ...}``), which carries no object. Only ``ObjectCreated:*``
records become events; other records and keys outside ``prefix`` are skipped.
"""

from __future__ import annotations

import datetime
import json
import urllib.parse
from typing import Any

from tideflow.exceptions import MalformedEventError
from tideflow.io.strategies import StoredObject
from tideflow.types import ObjectReader
from tideflow.types.aws import S3FileChangeEvent, s3_version

TEST_EVENT = "s3:TestEvent"


def parse_body(body: str) -> list[dict[str, Any]]:
    """The records of a message body; [] for ``s3:TestEvent``. ``MalformedEventError``."""
    try:
        document = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise MalformedEventError(f"message is not JSON: {str(body)[:80]!r}") from exc
    if not isinstance(document, dict):
        raise MalformedEventError("message is not an S3 event notification (not an object)")
    if document.get("Event") == TEST_EVENT:
        return []
    records = document.get("Records")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise MalformedEventError("message is not an S3 event notification (no Records list)")
    return records


def parse_record(
    record: dict[str, Any], *, reader: ObjectReader | None, prefix: str = ""
) -> S3FileChangeEvent | None:
    """The event of one record, or None when it is not an object creation under ``prefix``."""
    name = str(record.get("eventName", ""))
    if not name.startswith("ObjectCreated:"):
        return None
    try:
        s3 = record["s3"]
        bucket = str(s3["bucket"]["name"])
        obj = s3["object"]
        key = urllib.parse.unquote_plus(str(obj["key"]))
        etag = str(obj.get("eTag") or obj.get("etag") or "").strip('"')
        version_id = obj.get("versionId") or None
        size = int(obj.get("size", 0))
        event_time = _timestamp(str(record.get("eventTime", "")))
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedEventError(f"S3 record is missing or has a bad field: {exc}") from exc
    if not key.startswith(prefix):
        return None
    if not etag and not version_id:
        raise MalformedEventError(f"S3 record for {key!r} has neither eTag nor versionId")
    return S3FileChangeEvent(
        file_path=key,
        bucket=bucket,
        version=s3_version(version_id=version_id, etag=etag),
        size=size,
        event_time=event_time,
        metadata={"event_name": name},
        reader=reader,
        version_id=version_id if version_id != "null" else None,
        etag=etag,
        sequencer=obj.get("sequencer"),
    )


def created_record(
    *, bucket: str, stored: StoredObject, version_id: str | None, configuration_id: str
) -> dict[str, Any]:
    """The record S3 sends when ``stored`` is created (its key URL-encoded as S3 does), so
    that ``parse_record`` gives the original event back: same key and version."""
    obj: dict[str, Any] = {
        "key": urllib.parse.quote_plus(stored.key, safe="/"),
        "size": stored.size,
    }
    if version_id is None:
        obj["eTag"] = stored.version
    else:
        obj["versionId"] = version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": stored.updated.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z"),
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
    }


def record_body(record: dict[str, Any]) -> str:
    """A message body holding just ``record`` (what a dead letter of it carries)."""
    return json.dumps({"Records": [record]})


def _timestamp(text: str) -> datetime.datetime:
    if not text:
        return datetime.datetime.now(datetime.UTC)
    parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)
