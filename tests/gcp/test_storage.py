"""GCSBucket against the Cloud Storage emulator: apply, upload, read back, destroy."""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator

import pytest
from google.cloud import storage  # type: ignore[attr-defined]

from tests.gcp.conftest import PROJECT, unique
from tideflow.dependencies.builders import BucketDependencyBuilder
from tideflow.exceptions import ObjectNotFoundError, PrimitiveError
from tideflow.io.gcp import GCSBucket, GCSFileChangeStream
from tideflow.io.gcp.fake_pubsub import FakeNotifications, FakePubSub
from tideflow.io.primitive import PlanAction


@pytest.fixture
def bucket(gcs_emulator: str) -> Iterator[GCSBucket]:
    created = GCSBucket(project_id=PROJECT, bucket_name=unique("photos")).options(
        force_destroy=True
    )
    yield created
    created.destroy()


def test_apply_creates_the_bucket_and_a_second_apply_changes_nothing(bucket: GCSBucket) -> None:
    assert bucket.plan().action is PlanAction.CREATE

    assert bucket.apply().action is PlanAction.CREATE

    assert bucket.client().exists()
    assert bucket.plan().action is PlanAction.NO_CHANGE
    assert not bucket.apply().changes


def test_the_tutorial_upload_reads_back_through_the_event_blob(
    bucket: GCSBucket, pubsub: FakePubSub, notifications: FakeNotifications
) -> None:
    stream = GCSFileChangeStream(bucket, pubsub=pubsub, notifications=notifications)
    bucket.apply()
    stream.apply()
    bucket_dep = BucketDependencyBuilder(bucket)()
    assert isinstance(bucket_dep.bucket, storage.Bucket)

    blob = bucket_dep.bucket.blob("uploads/cat.png")
    blob.upload_from_file(io.BytesIO(b"\x89PNG cat"), content_type="image/png")
    # The emulator sends no notifications; publish what Cloud Storage would have sent.
    notifications.object_finalized(blob._properties)

    (delivery,) = stream.source().pull(max_messages=1, timeout=1)
    event = delivery.event
    assert (event.bucket, event.file_path, event.generation) == (
        bucket.bucket_name,
        "uploads/cat.png",
        blob.generation,
    )
    assert event.size == 8
    assert event.metadata["content_type"] == "image/png"
    assert event.blob == b"\x89PNG cat"
    # Replicas receive events pickled: the reader travels without its client.
    assert pickle.loads(pickle.dumps(event)).blob == b"\x89PNG cat"


def test_a_missing_object_is_object_not_found(bucket: GCSBucket) -> None:
    bucket.apply()
    with pytest.raises(ObjectNotFoundError, match=r"nope\.png"):
        bucket.read_bytes("nope.png", generation=7)


def test_destroy_refuses_a_non_empty_bucket_without_force_destroy(bucket: GCSBucket) -> None:
    bucket.apply()
    bucket.client().blob("keep.txt").upload_from_string(b"data")
    bucket.options(force_destroy=False)
    assert bucket.plan_destroy().detail == "only if empty"

    with pytest.raises(PrimitiveError, match="force_destroy=True"):
        bucket.destroy()

    assert bucket.client().exists()
    bucket.options(force_destroy=True)


def test_force_destroy_removes_the_bucket_and_its_objects(bucket: GCSBucket) -> None:
    bucket.apply()
    for index in range(3):
        bucket.client().blob(f"{index}.txt").upload_from_string(b"x")
    assert bucket.plan_destroy().action is PlanAction.DELETE

    assert bucket.destroy().action is PlanAction.DELETE

    assert not bucket.client().exists()
    again = bucket.destroy()
    assert (again.action, again.detail) == (PlanAction.NO_CHANGE, "already gone")
