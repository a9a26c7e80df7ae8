"""A Cloud Storage bucket as a primitive, and the reader that events fetch objects through.

``GCSBucket(project_id, bucket_name).options(force_destroy=True, location="US")``.
``client()`` is a google-cloud-storage ``Bucket``, so the BuildFlow tutorial's
``bucket_dep.bucket.blob(name).upload_from_file(f)`` works unchanged; ``objects()`` is the
portable ``ObjectStore`` (versions are generations). ``read_bytes`` reads one object
generation, or raises ``ObjectSupersededError`` naming the newer generation when the
object was replaced (the local stack does the same); events carry the bucket as their
reader and are pickled to replica processes, so the bucket pickles without its client and
makes a new one on first use.

Settings: ``project_id`` (else ``GCP_PROJECT_ID``), credentials and
``STORAGE_EMULATOR_HOST`` from ``settings`` (``tideflow.io.gcp.settings``; the
environment's when not given). Options: ``force_destroy`` (default False: destroy removes
only an empty bucket), ``location`` (default ``US``).

Guarantees: apply and destroy are idempotent. An upload is durable once
``upload_from_file`` returns (Cloud Storage is strongly consistent), and Cloud Storage
then sends its OBJECT_FINALIZE notification at least once.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from typing import IO, ClassVar

from google.api_core import exceptions as api_exceptions
from google.cloud import storage  # type: ignore[attr-defined]

from tideflow.exceptions import ObjectNotFoundError, ObjectSupersededError, PrimitiveError
from tideflow.io.gcp.clients import storage_client
from tideflow.io.gcp.errors import admin, api_disabled, describe
from tideflow.io.gcp.settings import GcpSettings
from tideflow.io.options import OptionCheck, flag, text
from tideflow.io.primitive import BucketPrimitive, PlanAction, PlanStep, ProcessLocal
from tideflow.io.strategies import ObjectStore, StoredObject

logger = logging.getLogger("tideflow.gcp")


class GCSBucket(ProcessLocal, BucketPrimitive):
    """A Cloud Storage bucket; ``client()`` gives the google-cloud-storage ``Bucket``.

    Events carry the bucket to replica processes; it travels without its client.
    """

    process_local = ("_client",)
    option_checks: ClassVar[Mapping[str, OptionCheck]] = {"force_destroy": flag, "location": text}

    def __init__(
        self,
        project_id: str | None = None,
        bucket_name: str = "",
        *,
        settings: GcpSettings | None = None,
    ) -> None:
        if not bucket_name:
            raise PrimitiveError("GCSBucket needs a bucket_name")
        self.settings = settings or GcpSettings.from_environ()
        self.project_id = self.settings.project(project_id)
        self.bucket_name = bucket_name
        self.force_destroy = False
        self.location = "US"
        self._client: storage.Client | None = None
        self._lock = threading.Lock()

    @property
    def resource(self) -> str:
        return f"bucket gs://{self.bucket_name}"

    def storage_client(self) -> storage.Client:
        """The storage client, created on first use."""
        with self._lock:
            if self._client is None:
                with admin("connect to", self.resource):
                    self._client = storage_client(self.project_id, self.settings)
            return self._client

    def client(self) -> storage.Bucket:
        """The google-cloud-storage ``Bucket`` (no API call until it is used)."""
        return self.storage_client().bucket(self.bucket_name)

    def objects(self) -> GCSObjectStore:
        return GCSObjectStore(self)

    # -- plan / apply / destroy ----------------------------------------------------------

    def primitive_id(self) -> str:
        return f"gcs-bucket:{self.bucket_name}"

    def _exists(self) -> bool:
        # Bucket names are global: a 403 on a name this project may read means another
        # project owns it (or this identity lacks storage.buckets.get).
        def taken(exc: BaseException) -> PrimitiveError:
            return PrimitiveError(
                f"bucket name {self.bucket_name!r} is taken by another project (bucket names "
                "are global), or this identity lacks storage.buckets.get on it: choose "
                f"another GCS_BUCKET_NAME ({describe(exc)})"
            )

        with admin(
            "look up", self.resource, "storage.buckets.get", cases={_forbidden_but_enabled: taken}
        ):
            return bool(self.client().exists())

    def plan(self) -> PlanStep:
        if self._exists():
            return self.step(PlanAction.NO_CHANGE, f"project {self.project_id}")
        return self.step(PlanAction.CREATE, f"project {self.project_id}, {self.location}")

    def plan_destroy(self) -> PlanStep:
        return self.removal_step(self._exists(), contents="all its objects")

    def apply(self) -> PlanStep:
        step = self.plan()
        if step.action is PlanAction.CREATE:
            taken = PrimitiveError(
                f"bucket name {self.bucket_name!r} is taken (bucket names are global across "
                "all projects); choose another"
            )
            with admin(
                "create",
                self.resource,
                "storage.buckets.create",
                cases={api_exceptions.Conflict: taken},
            ):
                self.storage_client().create_bucket(
                    self._new_bucket(), project=self.project_id, location=self.location
                )
        return step

    def _new_bucket(self) -> storage.Bucket:
        """The bucket as created: uniform bucket-level access, public access prevented.

        Organisations commonly enforce both (constraints/storage.uniformBucketLevelAccess,
        constraints/storage.publicAccessPrevention) and refuse buckets without them.
        """
        bucket = self.storage_client().bucket(self.bucket_name)
        bucket.iam_configuration.uniform_bucket_level_access_enabled = True
        bucket.iam_configuration.public_access_prevention = "enforced"
        return bucket

    def destroy(self) -> PlanStep:
        step = self.plan_destroy()
        if step.action is not PlanAction.DELETE:
            return step
        bucket = self.client()
        if self.force_destroy:
            self._delete_objects(bucket)
        not_empty = PrimitiveError(
            f"{self.resource} is not empty: empty it, or declare "
            "GCSBucket(...).options(force_destroy=True) to delete its objects"
        )
        with admin(
            "delete",
            self.resource,
            "storage.buckets.delete",
            cases={api_exceptions.Conflict: not_empty, api_exceptions.NotFound: None},
        ):
            bucket.delete()
        return step

    def _delete_objects(self, bucket: storage.Bucket) -> None:
        """Delete every object and every noncurrent version, with no soft-delete copy kept.

        Soft delete (on by default, 7 days) would keep, and bill, each deleted object:
        it is turned off first, unless that is refused (an organisation policy on
        constraints/storage.softDeletePolicySeconds, say): then the objects are deleted
        anyway, with a warning. Deleting a live object of a versioned bucket without its
        generation only makes it noncurrent, so each is deleted by generation.
        Bucket.delete(force=True) would refuse more than 256 objects. An object that
        cannot be deleted (403: a retention policy or hold, a missing permission) stops
        this with its own error, not a later "not empty".
        """
        self._turn_off_soft_delete(bucket)
        with admin("empty", self.resource, "storage.objects.delete"):
            # Page by page, so a large bucket is never listed into memory at once;
            # on_error is called only for NotFound (an object someone else deleted
            # meanwhile, which is fine); any other error is raised.
            for page in bucket.list_blobs(versions=True).pages:
                bucket.delete_blobs(list(page), on_error=lambda _: None, preserve_generation=True)

    def _turn_off_soft_delete(self, bucket: storage.Bucket) -> None:
        with admin("read the soft delete policy of", self.resource, "storage.buckets.get"):
            bucket.reload()
        days = (bucket.soft_delete_policy.retention_duration_seconds or 0) / 86400
        if not days:
            return
        try:
            with admin("turn off soft delete of", self.resource, "storage.buckets.update"):
                bucket.soft_delete_policy.retention_duration_seconds = 0
                bucket.patch()
        except PrimitiveError as exc:
            if not isinstance(exc.__cause__, _REFUSED):
                raise
            logger.warning(
                "%s: soft delete stays on (%s): the deleted objects are kept, and billed, "
                "for %g more day(s)",
                self.resource,
                describe(exc.__cause__),
                days,
            )


def _forbidden_but_enabled(exc: BaseException) -> bool:
    """A 403 that is not the API being off in the project."""
    return isinstance(exc, api_exceptions.Forbidden) and not api_disabled(exc)


# A bucket setting Cloud Storage will not change: an organisation policy (412), a
# missing permission (403) or a value it does not take (400).
_REFUSED = (
    api_exceptions.PreconditionFailed,
    api_exceptions.Forbidden,
    api_exceptions.BadRequest,
)

# google-cloud-storage sends an object of known size up to 8 MiB in one multipart request.
_SINGLE_REQUEST_BYTES = 8 * 1024 * 1024


class GCSObjectStore(ObjectStore):
    def __init__(self, bucket: GCSBucket) -> None:
        self.primitive = bucket
        self.bucket_name = bucket.bucket_name

    def put(
        self,
        key: str,
        data: IO[bytes],
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        size: int | None = None,
    ) -> StoredObject:
        blob = self.primitive.client().blob(key)
        blob.metadata = dict(metadata or {})
        with contextlib.ExitStack() as stack:
            if size is None:
                # Without a size, google-cloud-storage makes a resumable upload: two
                # requests (start a session, then send). Up to its multipart limit one
                # request does, so a small stream is read first and its size passed.
                head = data.read(_SINGLE_REQUEST_BYTES + 1)
                if len(head) <= _SINGLE_REQUEST_BYTES:
                    data, size = io.BytesIO(head), len(head)
                else:
                    # Larger: resumable anyway, and that path needs a seekable stream.
                    spool = stack.enter_context(tempfile.TemporaryFile())
                    spool.write(head)
                    shutil.copyfileobj(data, spool)
                    size = spool.tell()
                    spool.seek(0)
                    data = spool
            with admin("write", f"gs://{self.bucket_name}/{key}", "storage.objects.create"):
                # No if_generation_match=0: google-cloud-storage 3 retries uploads anyway
                # (DEFAULT_RETRY), and with that precondition a retry after a lost answer
                # fails 412 on the object this very call stored. Upload keys are new UUIDs,
                # so there is no other object to protect.
                blob.upload_from_file(data, content_type=content_type, size=size)
        return _stored(blob)

    def get(self, key: str, *, version: str | None = None) -> bytes:
        # The current object, only while it is still ``version``: one request, and a
        # replaced version fails as superseded whether or not the bucket keeps versions.
        match = int(version) if version is not None else None
        blob = self.primitive.client().blob(key)
        which = f" version {version}" if version is not None else ""

        def superseded(_: BaseException) -> ObjectSupersededError:
            current = self.stat(key)
            return self._superseded(key, version, current.version if current else "(deleted since)")

        with admin(
            "read",
            f"gs://{self.bucket_name}/{key}",
            "storage.objects.get",
            cases={
                api_exceptions.PreconditionFailed: superseded,
                api_exceptions.NotFound: ObjectNotFoundError(
                    f"no object {key!r}{which} in bucket {self.bucket_name}"
                ),
            },
        ):
            data = blob.download_as_bytes(if_generation_match=match)
        # Emulators ignore the precondition; the generation served says what was read
        # (x-goog-generation; asked separately when a server leaves it out).
        if version is not None:
            served = blob.generation or getattr(self.stat(key), "version", None)
            if str(served) != version:
                raise self._superseded(key, version, str(served))
        return data

    def _superseded(self, key: str, version: str | None, newer: str) -> ObjectSupersededError:
        return ObjectSupersededError(
            f"{key!r} version {version} was superseded by version {newer} before it could be read"
        )

    def stat(self, key: str) -> StoredObject | None:
        with admin("read", f"gs://{self.bucket_name}/{key}", "storage.objects.get"):
            blob = self.primitive.client().get_blob(key)
        return None if blob is None else _stored(blob)

    def list(self, *, prefix: str = "") -> Iterator[StoredObject]:
        with admin("list", self.primitive.resource, "storage.objects.list"):
            for blob in self.primitive.client().list_blobs(prefix=prefix):
                yield _stored(blob)


def _stored(blob: storage.Blob) -> StoredObject:
    return StoredObject(
        key=blob.name,
        version=str(blob.generation),
        size=int(blob.size or 0),
        updated=blob.updated or datetime.datetime.now(datetime.UTC),
        content_type=blob.content_type,
        metadata=dict(blob.metadata or {}),
    )
