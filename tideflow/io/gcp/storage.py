"""A Cloud Storage bucket as a primitive, and the reader that events fetch objects through.

``GCSBucket(project_id, bucket_name).options(force_destroy=True, location="US")``.
``client()`` is a google-cloud-storage ``Bucket``, so the BuildFlow tutorial's
``bucket_dep.bucket.blob(name).upload_from_file(f)`` works unchanged. ``read_bytes`` reads
one object generation; events carry the bucket as their reader and are pickled to replica
processes, so the bucket pickles without its client and makes a new one on first use.

Settings: ``project_id`` (else ``GCP_PROJECT_ID``), credentials and ``STORAGE_EMULATOR_HOST``
as described in ``tideflow.io.gcp.clients``. Options: ``force_destroy`` (default False:
destroy removes only an empty bucket), ``location`` (default ``US``).

Guarantees: apply and destroy are idempotent. An upload is durable once
``upload_from_file`` returns (Cloud Storage is strongly consistent), and Cloud Storage
then sends its OBJECT_FINALIZE notification at least once.
"""

from __future__ import annotations

import threading
from typing import Any

from google.api_core import exceptions as api_exceptions
from google.cloud import storage  # type: ignore[attr-defined]

from tideflow.exceptions import ObjectNotFoundError, PrimitiveError
from tideflow.io.gcp import clients
from tideflow.io.gcp.errors import translated
from tideflow.io.primitive import PlanAction, PlanStep, Primitive


class GCSBucket(Primitive):
    """A Cloud Storage bucket; ``client()`` gives the google-cloud-storage ``Bucket``."""

    def __init__(self, project_id: str | None = None, bucket_name: str = "") -> None:
        if not bucket_name:
            raise PrimitiveError("GCSBucket needs a bucket_name")
        self.project_id = clients.resolve_project(project_id)
        self.bucket_name = bucket_name
        self.force_destroy = False
        self.location = "US"
        self._client: storage.Client | None = None
        self._lock = threading.Lock()

    def _option_names(self) -> frozenset[str]:
        return frozenset({"force_destroy", "location"})

    def __getstate__(self) -> dict[str, Any]:
        # Events carry the bucket to replica processes; clients and locks do not pickle.
        state = self.__dict__.copy()
        state["_client"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def resource(self) -> str:
        return f"bucket gs://{self.bucket_name}"

    def storage_client(self) -> storage.Client:
        """The storage client, created on first use."""
        with self._lock:
            if self._client is None:
                with translated(resource=self.resource, action="connect to", error=PrimitiveError):
                    self._client = clients.storage_client(self.project_id)
            return self._client

    def client(self) -> storage.Bucket:
        """The google-cloud-storage ``Bucket`` (no API call until it is used)."""
        return self.storage_client().bucket(self.bucket_name)

    def read_bytes(self, key: str, *, generation: int | None = None) -> bytes:
        blob = self.client().blob(key, generation=generation)
        try:
            with translated(
                resource=f"gs://{self.bucket_name}/{key}",
                action="read",
                error=PrimitiveError,
                permission="storage.objects.get",
            ):
                return blob.download_as_bytes()
        except PrimitiveError as exc:
            if isinstance(exc.__cause__, api_exceptions.NotFound):
                which = f" generation {generation}" if generation is not None else ""
                raise ObjectNotFoundError(
                    f"no object {key!r}{which} in bucket {self.bucket_name}"
                ) from exc.__cause__
            raise

    # -- plan / apply / destroy ----------------------------------------------------------

    def primitive_id(self) -> str:
        return f"gcs-bucket:{self.bucket_name}"

    def _exists(self) -> bool:
        with translated(
            resource=self.resource,
            action="look up",
            error=PrimitiveError,
            permission="storage.buckets.get",
        ):
            return bool(self.client().exists())

    def plan(self) -> PlanStep:
        if self._exists():
            return self.step(PlanAction.NO_CHANGE, f"project {self.project_id}")
        return self.step(PlanAction.CREATE, f"project {self.project_id}, {self.location}")

    def plan_destroy(self) -> PlanStep:
        if not self._exists():
            return self.step(PlanAction.NO_CHANGE, "already gone")
        detail = "with all its objects" if self.force_destroy else "only if empty"
        return self.step(PlanAction.DELETE, detail)

    def apply(self) -> PlanStep:
        step = self.plan()
        if step.action is PlanAction.CREATE:
            try:
                with translated(
                    resource=self.resource,
                    action="create",
                    error=PrimitiveError,
                    permission="storage.buckets.create",
                ):
                    self.storage_client().create_bucket(
                        self.bucket_name, project=self.project_id, location=self.location
                    )
            except PrimitiveError as exc:
                if isinstance(exc.__cause__, api_exceptions.Conflict):
                    raise PrimitiveError(
                        f"bucket name {self.bucket_name!r} is taken (bucket names are global "
                        "across all projects); choose another"
                    ) from exc.__cause__
                raise
        return step

    def destroy(self) -> PlanStep:
        step = self.plan_destroy()
        if step.action is not PlanAction.DELETE:
            return step
        bucket = self.client()
        if self.force_destroy:
            self._delete_objects(bucket)
        try:
            with translated(
                resource=self.resource,
                action="delete",
                error=PrimitiveError,
                permission="storage.buckets.delete",
            ):
                bucket.delete()
        except PrimitiveError as exc:
            if isinstance(exc.__cause__, api_exceptions.Conflict):
                raise PrimitiveError(
                    f"{self.resource} is not empty: empty it, or declare "
                    "GCSBucket(...).options(force_destroy=True) to delete its objects"
                ) from exc.__cause__
            if not isinstance(exc.__cause__, api_exceptions.NotFound):
                raise
        return step

    def _delete_objects(self, bucket: storage.Bucket) -> None:
        # Bucket.delete(force=True) refuses buckets with more than 256 objects.
        with translated(
            resource=self.resource,
            action="empty",
            error=PrimitiveError,
            permission="storage.objects.delete",
        ):
            # Page by page, so a large bucket is never listed into memory at once;
            # on_error: an object someone else deleted meanwhile is fine.
            for page in bucket.list_blobs(versions=True).pages:
                bucket.delete_blobs(list(page), on_error=lambda _: None)
