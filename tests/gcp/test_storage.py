"""GCSBucket against the Cloud Storage emulator: apply, upload, read back, destroy."""

from __future__ import annotations

import io
import pickle
import re
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.cloud import storage  # type: ignore[attr-defined]

from tests.gcp.conftest import PROJECT, EventingStorage, unique
from tests.http_proxy import Forward, HttpProxy, Reply, Request, google_error
from tideflow.dependencies.builders import BucketDependencyBuilder
from tideflow.exceptions import ObjectNotFoundError, PrimitiveError
from tideflow.io.gcp import GCSBucket, GCSFileChangeStream
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
    eventing_storage: Callable[[str, str], EventingStorage],
) -> None:
    # fake-gcs-server publishes OBJECT_FINALIZE to the Pub/Sub emulator, as a bucket
    # notification does.
    name = unique("photos")
    eventing_storage(name, f"{name}-changes")
    bucket = GCSBucket(project_id=PROJECT, bucket_name=name).options(force_destroy=True)
    stream = GCSFileChangeStream(bucket)
    bucket.apply()
    stream.apply()
    # The builder gives Annotated[BucketDependency, provider]; build the provider here.
    bucket_dep = typing.get_args(BucketDependencyBuilder(bucket))[1]()
    assert isinstance(bucket_dep.bucket, storage.Bucket)

    blob = bucket_dep.bucket.blob("uploads/cat.png")
    blob.upload_from_file(io.BytesIO(b"\x89PNG cat"), content_type="image/png")

    source = stream.source()
    (delivery,) = source.pull(max_messages=1, timeout=10)
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
    source.ack([delivery.ack_id])
    source.close()
    stream.destroy()
    bucket.destroy()


def test_a_missing_object_is_object_not_found(bucket: GCSBucket) -> None:
    bucket.apply()
    with pytest.raises(ObjectNotFoundError, match=r"nope\.png"):
        bucket.read_bytes("nope.png", version="7")


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


def test_buckets_are_created_with_uniform_access_and_public_access_prevention(
    bucket: GCSBucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4g: organisations that enforce both refuse a bucket created without them.
    sent: list[dict[str, object]] = []
    client = bucket.storage_client()
    create = client.create_bucket

    def recording(bucket_or_name: storage.Bucket, **kwargs: object) -> storage.Bucket:
        sent.append(dict(bucket_or_name._properties))
        return create(bucket_or_name, **kwargs)

    monkeypatch.setattr(client, "create_bucket", recording)
    bucket.apply()
    (body,) = sent
    assert body["iamConfiguration"] == {
        "uniformBucketLevelAccess": {"enabled": True},
        "publicAccessPrevention": "enforced",
    }


class VersionedBucket:
    """What google-cloud-storage's Bucket does on a versioned bucket with soft delete on.

    No emulator here keeps noncurrent versions (fake-gcs-server lists and deletes only
    live ones) or soft-deleted objects, so the calls are checked on this stand-in.
    """

    def __init__(self) -> None:
        self.soft_delete_policy = types.SimpleNamespace(retention_duration_seconds=604800)
        self.patched: list[int] = []
        self.objects = {("same.txt", 1), ("same.txt", 2), ("gone.txt", 3)}

    def reload(self) -> None:
        pass

    def patch(self) -> None:
        self.patched.append(self.soft_delete_policy.retention_duration_seconds)

    def list_blobs(self, *, versions: bool) -> types.SimpleNamespace:
        blobs = [types.SimpleNamespace(name=n, generation=g) for n, g in sorted(self.objects)]
        return types.SimpleNamespace(pages=[blobs[:2], blobs[2:]])

    def delete_blobs(
        self, blobs: list[types.SimpleNamespace], *, on_error: object, preserve_generation: bool
    ) -> None:
        if preserve_generation:  # Without it, a live object only becomes noncurrent.
            self.objects -= {(b.name, b.generation) for b in blobs}


def test_force_destroy_deletes_every_version_and_keeps_no_soft_deleted_copy() -> None:
    # 4h: noncurrent versions would keep the bucket from being deleted; soft-deleted
    # objects would be kept (and billed) for 7 days.
    bucket = GCSBucket(project_id=PROJECT, bucket_name=unique("versioned"))
    native = VersionedBucket()

    bucket._delete_objects(native)  # type: ignore[arg-type]

    assert native.patched == [0]
    assert native.objects == set()


def test_one_storage_client_per_process_even_for_unpickled_buckets(gcs_emulator: str) -> None:
    # 4k: replicas receive each event's bucket pickled; they must not build a client each.
    original = GCSBucket(project_id=PROJECT, bucket_name=unique("shared"))
    copies = [pickle.loads(pickle.dumps(original)) for _ in range(3)]
    assert len({id(c.storage_client()) for c in [original, *copies]}) == 1


def test_an_upload_of_unknown_size_is_one_request(
    bucket: GCSBucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4k: without a size google-cloud-storage opens a resumable session (two requests).
    bucket.apply()
    seen: list[int | None] = []
    original = storage.Blob.upload_from_file

    def recording(self: storage.Blob, file_obj: Any, **kwargs: Any) -> None:
        seen.append(kwargs.get("size"))
        original(self, file_obj, **kwargs)

    monkeypatch.setattr(storage.Blob, "upload_from_file", recording)
    objects = bucket.objects()
    small = objects.put("small.png", io.BytesIO(b"x" * 1000), content_type="image/png")
    big = b"y" * (8 * 1024 * 1024 + 10)
    large = objects.put("large.png", io.BytesIO(big), content_type="image/png")

    assert seen == [1000, len(big)]
    assert (small.size, large.size) == (1000, len(big))
    assert objects.get("large.png") == big


def soft_delete_on_and_locked(request: Request, forward: Forward) -> Reply | None:
    """A bucket with Cloud Storage's default soft delete (7 days), which an organisation
    policy on constraints/storage.softDeletePolicySeconds keeps on."""
    bucket_resource = re.fullmatch(r"/storage/v1/b/[^/]+", request.route)
    if bucket_resource is None:
        return None
    if request.method == "PATCH":
        return google_error(
            412,
            "conditionNotMet",
            "Request violates constraint 'constraints/storage.softDeletePolicySeconds'",
        )
    if request.method != "GET":
        return None
    found = forward(request.body)
    if found.status == 200:
        found.body["softDeletePolicy"] = {"retentionDurationSeconds": "604800"}
    return found


@pytest.fixture
def proxied_bucket(
    gcs_emulator: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[GCSBucket, HttpProxy]]:
    proxy = HttpProxy(gcs_emulator, soft_delete_on_and_locked)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
    created = GCSBucket(project_id=PROJECT, bucket_name=unique("locked")).options(
        force_destroy=True
    )
    created.apply()
    for index in range(3):
        created.client().blob(f"{index}.txt").upload_from_string(b"x")
    yield created, proxy
    proxy.rules.clear()
    created.destroy()
    proxy.close()


def test_force_destroy_goes_on_when_soft_delete_cannot_be_turned_off(
    proxied_bucket: tuple[GCSBucket, HttpProxy], caplog: pytest.LogCaptureFixture
) -> None:
    # G11: an organisation policy refuses the change; the objects are deleted anyway.
    bucket, proxy = proxied_bucket
    caplog.set_level("WARNING", logger="tideflow.gcp")

    assert bucket.destroy().action is PlanAction.DELETE

    assert proxy.seen("PATCH", f"/b/{bucket.bucket_name}")
    assert not bucket.client().exists()
    assert "soft delete stays on" in caplog.text
    assert "billed, for 7 more day(s)" in caplog.text


def test_an_object_that_cannot_be_deleted_is_named_not_reported_as_not_empty(
    proxied_bucket: tuple[GCSBucket, HttpProxy],
) -> None:
    # G11: a 403 on one object (a retention policy here) is the error, not a later 409
    # that asks to declare the force_destroy that is declared.
    bucket, proxy = proxied_bucket

    def retained(request: Request, forward: Forward) -> Reply | None:
        if request.method == "DELETE" and request.route.endswith("/o/1.txt"):
            message = (
                "Object '1.txt' is subject to bucket's retention policy or object retention "
                "and cannot be deleted or overwritten"
            )
            return google_error(403, "retentionPolicyNotMet", message)
        return None

    proxy.rules.append(retained)
    with pytest.raises(PrimitiveError) as caught:
        bucket.destroy()
    assert "retention policy" in str(caught.value)
    assert "storage.objects.delete" in str(caught.value)
    assert "force_destroy" not in str(caught.value)
    assert bucket.client().exists()
