"""S3's documented notification JSON -> events; versions carried as S3 gives them."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from image_classification.image_ids import image_id_for, parse_image_id
from tideflow.exceptions import MalformedEventError
from tideflow.io.aws.notifications import parse_body, parse_record, record_body
from tideflow.types.aws import S3FileChangeEvent, s3_version

FIXTURES = Path(__file__).parent / "fixtures"


def test_documented_records_become_events() -> None:
    records = parse_body((FIXTURES / "s3_put_event.json").read_text())
    assert len(records) == 3
    put, multipart, removed = (parse_record(r, reader=None) for r in records)
    assert isinstance(put, S3FileChangeEvent)
    assert put.file_path == "uploads/Happy Face+1.jpg"  # '+' is a space, %2B a plus
    assert put.bucket == "amzn-s3-demo-bucket"
    assert put.size == 1024
    assert put.event_time == datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    assert put.version_id == "096fKKXTRTtl3on89fVO.nfljtsv6qko"
    assert put.etag == "d41d8cd98f00b204e9800998ecf8427e"
    assert put.sequencer == "0055AED6DCD90281E5"
    # A version id is opaque: carried as it is, '.' and all (the app encodes its ids).
    assert put.version == put.version_id
    assert put.event_id == f"amzn-s3-demo-bucket/uploads/Happy Face+1.jpg#{put.version}"
    assert put.metadata == {"event_name": "ObjectCreated:Put"}
    # Unversioned: the ETag without quotes (multipart ETags end in -N).
    assert multipart is not None and multipart.version == "a4c4d7d4d5fe8c8b6d0e2e5b8f3a1c77-3"
    assert multipart.version_id is None
    assert removed is None  # only ObjectCreated:* records are events


def test_test_event_and_prefix_are_skipped() -> None:
    assert parse_body((FIXTURES / "s3_test_event.json").read_text()) == []
    record = parse_body((FIXTURES / "s3_put_event.json").read_text())[1]
    assert parse_record(record, reader=None, prefix="uploads/") is not None
    assert parse_record(record, reader=None, prefix="photos/") is None


@pytest.mark.parametrize(
    "body",
    ["not json", "[1, 2]", '{"Records": "x"}', '{"Records": [{"eventName": "ObjectCreated:Put"}]}'],
)
def test_malformed_messages(body: str) -> None:
    with pytest.raises(MalformedEventError):
        for record in parse_body(body):
            parse_record(record, reader=None)


def test_record_body_round_trips() -> None:
    record = parse_body((FIXTURES / "s3_put_event.json").read_text())[0]
    assert json.loads(record_body(record)) == {"Records": [record]}


@pytest.mark.parametrize(
    ("version_id", "etag"),
    [
        (None, '"d41d8cd98f00b204e9800998ecf8427e"'),
        ("null", "d41d8cd98f00b204e9800998ecf8427e-12"),
        ("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", "x"),
        ("x-looks-encoded", "x"),
        ("v" * 300, "x"),
        (None, "weird/etag"),
    ],
)
def test_versions_are_the_version_id_else_the_etag(version_id: str | None, etag: str) -> None:
    version = s3_version(version_id=version_id, etag=etag)
    if version_id and version_id != "null":
        assert version == version_id
    else:
        assert version == etag.strip('"')
    # Whatever S3 hands over, the app's image ids hold it and give it back.
    image_id = image_id_for("uploads/a b.jpg", version)
    assert parse_image_id(image_id) == ("uploads/a b.jpg", version)
