"""Parsing Cloud Storage's OBJECT_FINALIZE notifications into file-change events."""

from __future__ import annotations

import base64
import datetime
import json
import pickle
from pathlib import Path

import pytest

from tideflow.io.gcp import GCSBucket, GCSFileChangeEvent
from tideflow.io.gcp.notifications import (
    MalformedNotificationError,
    finalize_message,
    parse_notification,
)
from tideflow.types import FileChangeEvent

FIXTURE = Path(__file__).parent / "fixtures" / "object_finalize.json"


class Reader:
    def __init__(self) -> None:
        self.reads: list[tuple[str, str | None]] = []

    def read_bytes(self, key: str, *, version: str | None = None) -> bytes:
        self.reads.append((key, version))
        return b"jpeg bytes"


def fixture_message() -> tuple[dict[str, str], bytes]:
    message = json.loads(FIXTURE.read_text())["message"]
    return message["attributes"], base64.b64decode(message["data"])


def test_the_documented_object_finalize_payload_becomes_an_event() -> None:
    attributes, data = fixture_message()
    reader = Reader()

    event = parse_notification(attributes=attributes, data=data, reader=reader)

    assert isinstance(event, GCSFileChangeEvent)
    assert isinstance(event, FileChangeEvent)
    assert event.file_path == "uploads/2026/03/cat photo.jpg"
    assert event.bucket == "tideflow-photos"
    assert event.generation == 1773480413589793
    assert event.size == 48213
    assert event.event_time == datetime.datetime(
        2026, 3, 14, 9, 26, 53, 589793, tzinfo=datetime.UTC
    )
    assert event.metadata == {"image-name": "cat photo.jpg", "content_type": "image/jpeg"}
    assert event.event_id == "tideflow-photos/uploads/2026/03/cat photo.jpg#1773480413589793"
    assert event.blob == b"jpeg bytes"
    assert reader.reads == [("uploads/2026/03/cat photo.jpg", "1773480413589793")]


def test_the_same_notification_twice_is_the_same_event() -> None:
    attributes, data = fixture_message()
    first = parse_notification(attributes=attributes, data=data, reader=None)
    again = parse_notification(attributes=dict(attributes), data=data, reader=Reader())
    assert first == again


def test_other_event_types_are_not_events() -> None:
    attributes, data = fixture_message()
    for kind in ("OBJECT_DELETE", "OBJECT_ARCHIVE", "OBJECT_METADATA_UPDATE"):
        assert (
            parse_notification(attributes={**attributes, "eventType": kind}, data=data, reader=None)
            is None
        )


@pytest.mark.parametrize(
    ("attributes", "data", "message"),
    [
        ({}, b"{}", "no eventType"),
        ({"eventType": "OBJECT_FINALIZE", "payloadFormat": "NONE"}, b"", "JSON_API_V1"),
        ({"eventType": "OBJECT_FINALIZE"}, b"not json", "not JSON"),
        ({"eventType": "OBJECT_FINALIZE"}, b"[1]", "not a JSON object"),
        ({"eventType": "OBJECT_FINALIZE"}, b'{"name": "a"}', "no bucket"),
        (
            {"eventType": "OBJECT_FINALIZE", "bucketId": "b", "objectId": "a"},
            b'{"generation": "x", "timeCreated": "2026-01-01T00:00:00Z"}',
            "unreadable",
        ),
    ],
)
def test_malformed_notifications_are_named(
    attributes: dict[str, str], data: bytes, message: str
) -> None:
    with pytest.raises(MalformedNotificationError, match=message):
        parse_notification(attributes=attributes, data=data, reader=None)


def test_finalize_message_round_trips_through_the_parser() -> None:
    resource = {
        "bucket": "b",
        "name": "a/b.png",
        "generation": "42",
        "size": "5",
        "contentType": "image/png",
        "updated": "2026-01-02T03:04:05.678Z",
    }
    data, attributes = finalize_message(
        resource, notification_config="projects/_/buckets/b/notificationConfigs/1"
    )
    event = parse_notification(attributes=attributes, data=data, reader=None)
    assert event is not None
    assert (event.bucket, event.file_path, event.generation, event.size) == ("b", "a/b.png", 42, 5)
    assert event.event_time.tzinfo is not None


def test_events_pickle_with_their_bucket_reader_and_no_client() -> None:
    bucket = GCSBucket(project_id="p", bucket_name="photos")
    bucket._client = object()  # type: ignore[assignment]  # Stands in for a live client.
    attributes, data = fixture_message()
    event = parse_notification(attributes=attributes, data=data, reader=bucket)

    copy = pickle.loads(pickle.dumps(event))

    assert copy == event
    assert isinstance(copy.reader, GCSBucket)
    assert copy.reader.bucket_name == "photos"
    assert copy.reader._client is None
