"""An S3 bucket as a primitive, its portable ``ObjectStore``, and the reader events use.

``S3Bucket(bucket_name, region=None).options(force_destroy=True, versioning=False)``.
``client()`` is a boto3 ``s3.Bucket`` resource, so the BuildFlow tutorial's
``bucket_dep.bucket.put_object(Key=..., Body=...)`` / ``upload_fileobj`` work unchanged;
``objects()`` is the ``ObjectStore`` the app uses on every stack.

Settings: ``region`` (else ``AWS_REGION``, default ``us-east-1``), credentials and
``AWS_ENDPOINT_URL`` as described in ``tideflow.io.aws.clients``. Options:
``force_destroy`` (default False: destroy removes only an empty bucket; True deletes every
object version and delete marker first), ``versioning`` (default False; True turns on
S3 versioning at apply, and events then carry version ids instead of ETags).

Object versions: a versioned bucket's version is the object's ``VersionId``; otherwise it
is the ETag without quotes, which ``put`` returns, so an upload knows the id of the event
it will cause. ``read_bytes(key, version=...)`` reads exactly that version: by version id,
or with ``If-Match: <ETag>``; an unversioned object that was overwritten since fails with
``ObjectSupersededError`` naming the newer ETag (the newer object has its own event).

Guarantees: apply and destroy are idempotent. S3 is strongly consistent: once ``put``
returns, reads see the object and S3 sends its ``ObjectCreated`` notification at least once.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator, Mapping
from typing import IO, Any

from tideflow.exceptions import ObjectNotFoundError, ObjectSupersededError, PrimitiveError
from tideflow.io.aws import clients
from tideflow.io.aws.errors import error_code, translated
from tideflow.io.primitive import BucketPrimitive, PlanAction, PlanStep
from tideflow.io.strategies import ObjectStore, StoredObject
from tideflow.types.aws import HASHED_PREFIX, decode_version, s3_version

_ETAG = re.compile(r"[0-9a-f]{32}(-[0-9]+)?")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_NOT_FOUND = {"404", "NoSuchKey", "NoSuchVersion", "NotFound", "NoSuchBucket"}


class S3Bucket(BucketPrimitive):
    """An S3 bucket; ``client()`` gives a boto3 ``s3.Bucket`` resource."""

    def __init__(self, bucket_name: str, region: str | None = None) -> None:
        if not _BUCKET_NAME.fullmatch(bucket_name or ""):
            raise PrimitiveError(
                f"{bucket_name!r} is not a valid S3 bucket name (3 to 63 lowercase letters, "
                "digits, '.' or '-', starting and ending with a letter or digit)"
            )
        self.bucket_name = bucket_name
        self.region = clients.resolve_region(region)
        self.force_destroy = False
        self.versioning = False

    def _option_names(self) -> frozenset[str]:
        return frozenset({"force_destroy", "versioning"})

    def _check_option(self, name: str, value: Any) -> str | None:
        if not isinstance(value, bool):
            return "must be True or False"
        return None

    @property
    def resource(self) -> str:
        return f"bucket s3://{self.bucket_name}"

    def s3(self) -> Any:
        """The shared boto3 S3 client."""
        return clients.client("s3", self.region)

    def client(self) -> Any:
        """A boto3 ``s3.Bucket`` resource (no API call until it is used)."""
        return clients.s3_resource(self.region).Bucket(self.bucket_name)

    def objects(self) -> S3ObjectStore:
        return S3ObjectStore(self)

    def read_bytes(self, key: str, *, version: str | None = None) -> bytes:
        return self.objects().get(key, version=version)

    def is_versioned(self) -> bool:
        with translated(
            resource=self.resource,
            action="read the versioning of",
            error=PrimitiveError,
            permission="s3:GetBucketVersioning",
        ):
            status = self.s3().get_bucket_versioning(Bucket=self.bucket_name).get("Status")
        return status in ("Enabled", "Suspended")

    # -- plan / apply / destroy ----------------------------------------------------------

    def primitive_id(self) -> str:
        return f"s3-bucket:{self.bucket_name}"

    def exists(self) -> bool:
        try:
            self.s3().head_bucket(Bucket=self.bucket_name)
        except Exception as exc:
            code = error_code(exc)
            if code in _NOT_FOUND:
                return False
            if code in ("403", "AccessDenied"):
                raise PrimitiveError(
                    f"{self.resource} exists but this account cannot use it (bucket names are "
                    "global across all AWS accounts; choose another, or grant s3:ListBucket)"
                ) from exc
            with translated(
                resource=self.resource,
                action="look up",
                error=PrimitiveError,
                permission="s3:ListBucket",
            ):
                raise
        return True

    def plan(self) -> PlanStep:
        if not self.exists():
            extra = ", versioning on" if self.versioning else ""
            return self.step(PlanAction.CREATE, f"region {self.region}{extra}")
        if self.versioning and not self.is_versioned():
            return self.step(PlanAction.UPDATE, "turn versioning on")
        return self.step(PlanAction.NO_CHANGE, f"region {self.region}")

    def plan_destroy(self) -> PlanStep:
        if not self.exists():
            return self.step(PlanAction.NO_CHANGE, "already gone")
        detail = "with all its objects and versions" if self.force_destroy else "only if empty"
        return self.step(PlanAction.DELETE, detail)

    def apply(self) -> PlanStep:
        step = self.plan()
        if step.action is PlanAction.CREATE:
            kwargs: dict[str, Any] = {"Bucket": self.bucket_name}
            if self.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            try:
                self.s3().create_bucket(**kwargs)
            except Exception as exc:
                if error_code(exc) == "BucketAlreadyOwnedByYou":
                    pass
                elif error_code(exc) == "BucketAlreadyExists":
                    raise PrimitiveError(
                        f"bucket name {self.bucket_name!r} is taken (bucket names are global "
                        "across all AWS accounts); choose another"
                    ) from exc
                else:
                    with translated(
                        resource=self.resource,
                        action="create",
                        error=PrimitiveError,
                        permission="s3:CreateBucket",
                    ):
                        raise
        if self.versioning and step.action is not PlanAction.NO_CHANGE:
            with translated(
                resource=self.resource,
                action="turn on versioning of",
                error=PrimitiveError,
                permission="s3:PutBucketVersioning",
            ):
                self.s3().put_bucket_versioning(
                    Bucket=self.bucket_name, VersioningConfiguration={"Status": "Enabled"}
                )
        return step

    def destroy(self) -> PlanStep:
        step = self.plan_destroy()
        if step.action is not PlanAction.DELETE:
            return step
        if self.force_destroy:
            self._empty()
        try:
            self.s3().delete_bucket(Bucket=self.bucket_name)
        except Exception as exc:
            code = error_code(exc)
            if code == "BucketNotEmpty":
                raise PrimitiveError(
                    f"{self.resource} is not empty: empty it, or declare "
                    "S3Bucket(...).options(force_destroy=True) to delete its objects "
                    "(S3_FORCE_DESTROY=true on the aws stack)"
                ) from exc
            if code not in _NOT_FOUND:
                with translated(
                    resource=self.resource,
                    action="delete",
                    error=PrimitiveError,
                    permission="s3:DeleteBucket",
                ):
                    raise
        return step

    def _empty(self) -> None:
        """Delete every object version and delete marker, a page (<= 1,000) at a time."""
        with translated(
            resource=self.resource,
            action="empty",
            error=PrimitiveError,
            permission="s3:ListBucketVersions, s3:DeleteObjectVersion",
        ):
            pages = (
                self.s3().get_paginator("list_object_versions").paginate(Bucket=self.bucket_name)
            )
            for page in pages:
                doomed = [
                    {"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in (*page.get("Versions", []), *page.get("DeleteMarkers", []))
                ]
                if doomed:
                    self.s3().delete_objects(
                        Bucket=self.bucket_name, Delete={"Objects": doomed, "Quiet": True}
                    )


def _version_of(response: Mapping[str, Any]) -> str:
    return s3_version(version_id=response.get("VersionId"), etag=response.get("ETag", ""))


class S3ObjectStore(ObjectStore):
    """The portable object calls on an S3 bucket (a shared, thread-safe boto3 client)."""

    def __init__(self, bucket: S3Bucket) -> None:
        self.bucket = bucket
        self.bucket_name = bucket.bucket_name

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket_name}/{key}"

    def put(
        self,
        key: str,
        data: IO[bytes],
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        size: int | None = None,
    ) -> StoredObject:
        # put_object (not a multipart upload_fileobj) so that the ETag is the MD5 and is
        # returned: the event's version is known now. Uploads are size-limited upstream.
        body = data.read()
        with translated(
            resource=self._where(key),
            action="write",
            error=PrimitiveError,
            permission="s3:PutObject",
        ):
            response = self.bucket.s3().put_object(
                Bucket=self.bucket_name,
                Key=key,
                Body=body,
                ContentType=content_type,
                Metadata=dict(metadata or {}),
            )
        return StoredObject(
            key=key,
            version=_version_of(response),
            size=len(body),
            updated=datetime.datetime.now(datetime.UTC),
            content_type=content_type,
            metadata=dict(metadata or {}),
        )

    def get(self, key: str, *, version: str | None = None) -> bytes:
        kwargs: dict[str, Any] = {"Bucket": self.bucket_name, "Key": key}
        kwargs.update(self._version_args(key, version))
        try:
            response = self.bucket.s3().get_object(**kwargs)
            return bytes(response["Body"].read())
        except Exception as exc:
            code = error_code(exc)
            which = f" version {version}" if version else ""
            if code in ("PreconditionFailed", "412"):
                current = self.stat(key)
                newer = current.version if current else "(deleted)"
                raise ObjectSupersededError(
                    f"s3://{self.bucket_name}/{key} version {version} was superseded by "
                    f"version {newer}"
                ) from exc
            if code in _NOT_FOUND or code == "InvalidArgument":
                raise ObjectNotFoundError(
                    f"no object {key!r}{which} in bucket {self.bucket_name}"
                ) from exc
            with translated(
                resource=self._where(key),
                action="read",
                error=PrimitiveError,
                permission="s3:GetObject, s3:GetObjectVersion",
            ):
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _find_hashed(self, key: str, version: str) -> str:
        with translated(
            resource=self._where(key),
            action="list versions of",
            error=PrimitiveError,
            permission="s3:ListBucketVersions",
        ):
            pages = (
                self.bucket.s3()
                .get_paginator("list_object_versions")
                .paginate(Bucket=self.bucket_name, Prefix=key)
            )
            for page in pages:
                for item in page.get("Versions", []):
                    if item["Key"] == key and _version_of(item) == version:
                        return str(item["VersionId"])
        raise ObjectNotFoundError(f"no object {key!r} version {version} in {self.bucket_name}")

    def version_id(self, key: str, version: str) -> str | None:
        """S3's own version id behind ``version``; None when ``version`` is an ETag (an
        unversioned bucket)."""
        if _ETAG.fullmatch(version):
            return None
        if version.startswith(HASHED_PREFIX):
            return self._find_hashed(key, version)
        return decode_version(version) or version

    def _version_args(self, key: str, version: str | None) -> dict[str, Any]:
        if version is None:
            return {}
        version_id = self.version_id(key, version)
        return {"IfMatch": f'"{version}"'} if version_id is None else {"VersionId": version_id}

    def stat(self, key: str, *, version: str | None = None) -> StoredObject | None:
        """The object (``version`` of it when given); None when it (or that version) is gone."""
        try:
            head = self.bucket.s3().head_object(
                Bucket=self.bucket_name, Key=key, **self._version_args(key, version)
            )
        except Exception as exc:
            if error_code(exc) in _NOT_FOUND | {"PreconditionFailed", "412", "400"}:
                return None
            with translated(
                resource=self._where(key),
                action="look up",
                error=PrimitiveError,
                permission="s3:GetObject",
            ):
                raise
        return StoredObject(
            key=key,
            version=_version_of(head),
            size=int(head.get("ContentLength", 0)),
            updated=head["LastModified"],
            content_type=head.get("ContentType"),
            metadata=dict(head.get("Metadata") or {}),
        )

    def list(self, *, prefix: str = "") -> Iterator[StoredObject]:
        """Current objects under ``prefix``, a page at a time (no content type/metadata)."""
        versioned = self.bucket.is_versioned()
        with translated(
            resource=self.bucket.resource,
            action="list",
            error=PrimitiveError,
            permission="s3:ListBucket",
        ):
            if versioned:
                pages = (
                    self.bucket.s3()
                    .get_paginator("list_object_versions")
                    .paginate(Bucket=self.bucket_name, Prefix=prefix)
                )
                for page in pages:
                    for item in page.get("Versions", []):
                        if item.get("IsLatest"):
                            yield self._listed(item)
            else:
                pages = (
                    self.bucket.s3()
                    .get_paginator("list_objects_v2")
                    .paginate(Bucket=self.bucket_name, Prefix=prefix)
                )
                for page in pages:
                    for item in page.get("Contents", []):
                        yield self._listed(item)

    @staticmethod
    def _listed(item: Mapping[str, Any]) -> StoredObject:
        return StoredObject(
            key=str(item["Key"]),
            version=_version_of(item),
            size=int(item.get("Size", 0)),
            updated=item["LastModified"],
        )
