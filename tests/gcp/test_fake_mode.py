"""TIDEFLOW_GCP_FAKE_PUBSUB: a whole app on the Cloud Storage emulator with in-memory Pub/Sub."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gcp.conftest import PROJECT, unique
from tideflow.io.gcp import GCSBucket, GCSFileChangeStream, fake_pubsub


@pytest.fixture
def fake_mode(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(fake_pubsub.FAKE_ENV, "1")
    monkeypatch.setattr(fake_pubsub, "_shared", None)
    yield


def test_streams_share_the_process_fake_which_notices_uploads(fake_mode: None) -> None:
    bucket = GCSBucket(project_id=PROJECT, bucket_name=unique("fake")).options(force_destroy=True)
    bucket.apply()
    bucket.client().blob("before.txt").upload_from_string(b"old")
    stream = GCSFileChangeStream(bucket)
    stream.apply()
    assert isinstance(stream.pubsub(), fake_pubsub.FakePubSub)
    # Another declaration of the same stream (as in a second module import) sees the same.
    assert GCSFileChangeStream(bucket).pubsub() is stream.pubsub()

    bucket.client().blob("after.txt").upload_from_string(b"new")

    source = stream.source()
    deliveries = source.pull(max_messages=5, timeout=5)
    assert [d.event.file_path for d in deliveries] == ["after.txt"]
    assert deliveries[0].event.blob == b"new"
    source.ack([d.ack_id for d in deliveries])
    stream.destroy()
    bucket.destroy()


def test_without_the_variable_streams_use_google(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(fake_pubsub.FAKE_ENV, raising=False)
    bucket = GCSBucket(project_id=PROJECT, bucket_name=unique("real"))
    assert type(GCSFileChangeStream(bucket).pubsub()).__name__ == "GooglePubSubTransport"
