"""An S3 bucket as a primitive, its portable ``ObjectStore``, and the reader events use.

``S3Bucket(bucket_name, region=None).options(force_destroy=True, versioning=False)``.
``client()`` is a boto3 ``s3.Bucket`` resource (one per thread), so the BuildFlow tutorial's
``bucket_dep.bucket.put_object(Key=..., Body=...)`` / ``upload_fileobj`` work unchanged;
``objects()`` is the ``ObjectStore`` the app uses on every stack.

Settings: ``region`` (else ``AWS_REGION``, default ``us-east-1``: see
``tideflow.io.aws.settings``), credentials and ``AWS_ENDPOINT_URL`` as boto3 reads them. Options:
``force_destroy`` (default False: destroy removes only an empty bucket; True deletes every
object version and delete marker first), ``versioning`` (default False; True turns on
S3 versioning at apply, and events then carry version ids instead of ETags),
``versioning_wait_seconds`` (default 900: after turning versioning on, apply waits this
long, as S3 asks, since reads of objects written while the change spreads can fail as
missing; 0 for a bucket nothing uses yet). ``plan`` refuses a bucket that is in another
region than ``region`` (S3 notifies queues of its own region only).

User metadata may hold any text: values that are not ASCII travel as RFC 2047 encoded
words, as S3 documents (``tideflow.io.aws.metadata``), and are decoded on read.

Object versions: a versioned bucket's version is the object's ``VersionId``, carried as S3
gives it (an opaque string: an app that puts it into URLs encodes it); otherwise it is the
ETag without quotes. ``put`` returns it, so an upload knows the id of the event it will
cause. ``read_bytes(key, version=...)`` reads exactly that version: by version id,
or with ``If-Match: <ETag>``; an unversioned object that was overwritten since fails with
``ObjectSupersededError`` naming the newer ETag (the newer object has its own event).

Guarantees: apply and destroy are idempotent. S3 is strongly consistent: once ``put``
returns, reads see the object and S3 sends its ``ObjectCreated`` notification at least once.
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import IO, Any, ClassVar

from tideflow.exceptions import ObjectNotFoundError, ObjectSupersededError, PrimitiveError
from tideflow.io.aws.clients import client, s3_resource
from tideflow.io.aws.errors import AWS_ERRORS
from tideflow.io.aws.metadata import decode_metadata, encode_metadata
from tideflow.io.aws.settings import default_region
from tideflow.io.errors import Case, Outcome, one_line
from tideflow.io.options import OptionCheck, flag, seconds
from tideflow.io.primitive import BucketPrimitive, PlanAction, PlanStep
from tideflow.io.strategies import ObjectStore, StoredObject
from tideflow.types.aws import s3_version

_ETAG = re.compile(r"[0-9a-f]{32}(-[0-9]+)?")
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NoSuchVersion", "NotFound", "NoSuchBucket"})
_FORBIDDEN = frozenset({"403", "AccessDenied"})
_PRECONDITION_FAILED = frozenset({"PreconditionFailed", "412"})
_BAD_REQUEST = frozenset({"400", "BadRequest"})
# S3 asks to wait 15 minutes after turning versioning on: until the change has spread,
# reads of objects written meanwhile can answer 404 (PutBucketVersioning).
VERSIONING_WAIT_SECONDS = 900
logger = logging.getLogger("tideflow.aws")


class S3Bucket(BucketPrimitive):
    """An S3 bucket; ``client()`` gives a boto3 ``s3.Bucket`` resource."""

    option_checks: ClassVar[Mapping[str, OptionCheck]] = {
        "force_destroy": flag,
        "versioning": flag,
        "versioning_wait_seconds": seconds(0, None),
    }

    def __init__(self, bucket_name: str, region: str | None = None) -> None:
        if not _BUCKET_NAME.fullmatch(bucket_name or ""):
            raise PrimitiveError(
                f"{bucket_name!r} is not a valid S3 bucket name (3 to 63 lowercase letters, "
                "digits, '.' or '-', starting and ending with a letter or digit)"
            )
        self.bucket_name = bucket_name
        self.region = region or default_region()
        self.force_destroy = False
        self.versioning = False
        self.versioning_wait_seconds: float = VERSIONING_WAIT_SECONDS

    @property
    def resource(self) -> str:
        return f"bucket s3://{self.bucket_name}"

    def translated(
        self,
        action: str,
        permission: str,
        *,
        where: str | None = None,
        cases: Mapping[Case, Outcome] | None = None,
    ) -> AbstractContextManager[None]:
        """An S3 call on the bucket (or on ``where`` in it); its errors as ``PrimitiveError``
        (``tideflow.io.errors``)."""
        return AWS_ERRORS.admin(action, where or self.resource, permission, cases=cases)

    def s3(self) -> Any:
        """The shared boto3 S3 client."""
        return client("s3", self.region)

    def client(self) -> Any:
        """A boto3 ``s3.Bucket`` resource for each thread that uses it (no API call until
        it is used): a PROCESS-scoped dependency is shared by request threads, and boto3
        resources are not thread-safe."""
        return _BucketPerThread(self)

    def objects(self) -> S3ObjectStore:
        return S3ObjectStore(self)

    def read_bytes(self, key: str, *, version: str | None = None) -> bytes:
        return self.objects().get(key, version=version)

    def location(self) -> str:
        """The region the bucket is in."""
        with self.translated("read the region of", "s3:GetBucketLocation"):
            found = self.s3().get_bucket_location(Bucket=self.bucket_name).get("LocationConstraint")
        # us-east-1 answers no constraint; "EU" is the legacy name of eu-west-1.
        return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(found, found)

    def is_versioned(self) -> bool:
        with self.translated("read the versioning of", "s3:GetBucketVersioning"):
            status = self.s3().get_bucket_versioning(Bucket=self.bucket_name).get("Status")
        return status in ("Enabled", "Suspended")

    # -- plan / apply / destroy ----------------------------------------------------------

    def primitive_id(self) -> str:
        return f"s3-bucket:{self.bucket_name}"

    def exists(self) -> bool:
        taken = PrimitiveError(
            f"{self.resource} exists but this account cannot use it (bucket names are "
            "global across all AWS accounts; choose another, or grant s3:ListBucket)"
        )
        with self.translated(
            "look up", "s3:ListBucket", cases={_NOT_FOUND: None, _FORBIDDEN: taken}
        ):
            self.s3().head_bucket(Bucket=self.bucket_name)
            return True
        return False

    def plan(self) -> PlanStep:
        wait = self._versioning_wait_note()
        if not self.exists():
            extra = f", versioning on{wait}" if self.versioning else ""
            return self.step(PlanAction.CREATE, f"region {self.region}{extra}")
        actual = self.location()
        if actual != self.region:
            raise PrimitiveError(
                f"{self.resource} is in region {actual}, not {self.region}: set "
                f"AWS_REGION={actual} (S3 sends notifications only to queues in the bucket's "
                "region)"
            )
        if self.versioning and not self.is_versioned():
            return self.step(PlanAction.UPDATE, f"turn versioning on{wait}")
        return self.step(PlanAction.NO_CHANGE, f"region {self.region}")

    def _versioning_wait_note(self) -> str:
        seconds = self.versioning_wait_seconds
        return f", then wait {seconds / 60:g} min as S3 asks" if seconds else ""

    def _wait_for_versioning(self) -> None:
        if not self.versioning_wait_seconds:
            return
        logger.warning(
            "%s: versioning turned on; waiting %g min before it is used, as S3 asks (reads "
            "of objects written meanwhile can fail as missing)",
            self.resource,
            self.versioning_wait_seconds / 60,
        )
        time.sleep(self.versioning_wait_seconds)

    def plan_destroy(self) -> PlanStep:
        return self.removal_step(self.exists(), contents="all its objects and versions")

    def apply(self) -> PlanStep:
        step = self.plan()
        if step.action is PlanAction.CREATE:
            kwargs: dict[str, Any] = {"Bucket": self.bucket_name}
            if self.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            taken = PrimitiveError(
                f"bucket name {self.bucket_name!r} is taken (bucket names are global across "
                "all AWS accounts); choose another"
            )
            with self.translated(
                "create",
                "s3:CreateBucket",
                cases={"BucketAlreadyOwnedByYou": None, "BucketAlreadyExists": taken},
            ):
                self.s3().create_bucket(**kwargs)
        if self.versioning and step.action is not PlanAction.NO_CHANGE:
            with self.translated("turn on versioning of", "s3:PutBucketVersioning"):
                self.s3().put_bucket_versioning(
                    Bucket=self.bucket_name, VersioningConfiguration={"Status": "Enabled"}
                )
            self._wait_for_versioning()
        return step

    def destroy(self) -> PlanStep:
        step = self.plan_destroy()
        if step.action is not PlanAction.DELETE:
            return step
        if self.force_destroy:
            self._empty()
        not_empty = PrimitiveError(
            f"{self.resource} is not empty: empty it, or declare "
            "S3Bucket(...).options(force_destroy=True) to delete its objects "
            "(S3_FORCE_DESTROY=true on the aws stack)"
        )
        with self.translated(
            "delete", "s3:DeleteBucket", cases={"BucketNotEmpty": not_empty, _NOT_FOUND: None}
        ):
            self.s3().delete_bucket(Bucket=self.bucket_name)
        return step

    def _empty(self) -> None:
        """Delete every object version and delete marker, a page (<= 1,000) at a time."""
        with self.translated("empty", "s3:ListBucketVersions, s3:DeleteObjectVersion"):
            pages = (
                self.s3().get_paginator("list_object_versions").paginate(Bucket=self.bucket_name)
            )
            for page in pages:
                doomed = [
                    {"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in (*page.get("Versions", []), *page.get("DeleteMarkers", []))
                ]
                if not doomed:
                    continue
                answer = self.s3().delete_objects(
                    Bucket=self.bucket_name, Delete={"Objects": doomed, "Quiet": True}
                )
                # Quiet mode lists only the keys S3 did not delete (object lock, denied).
                if refused := answer.get("Errors"):
                    first = refused[0]
                    raise PrimitiveError(
                        f"cannot empty {self.resource}: S3 refused to delete {len(refused)} "
                        f"object version(s), e.g. {first.get('Key')!r} version "
                        f"{first.get('VersionId')}: {first.get('Code')}: "
                        f"{one_line(str(first.get('Message', '')))}"
                    )


class _BucketPerThread:
    """Behaves as a boto3 ``s3.Bucket``: each thread gets its own resource on first use."""

    def __init__(self, bucket: S3Bucket) -> None:
        self._bucket = bucket
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        resource = getattr(self._local, "resource", None)
        if resource is None:
            resource = s3_resource(self._bucket.region).Bucket(self._bucket.bucket_name)
            self._local.resource = resource
        return getattr(resource, name)

    def __repr__(self) -> str:
        return f"s3.Bucket(name={self._bucket.bucket_name!r}), one per thread"


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
        with self.bucket.translated("write", "s3:PutObject", where=self._where(key)):
            response = self.bucket.s3().put_object(
                Bucket=self.bucket_name,
                Key=key,
                Body=body,
                ContentType=content_type,
                Metadata=encode_metadata(metadata or {}),
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
        which = f" version {version}" if version else ""
        with self.bucket.translated(
            "read",
            "s3:GetObject, s3:GetObjectVersion",
            where=self._where(key),
            cases={
                _PRECONDITION_FAILED: lambda _: self._superseded(key, version),
                _NOT_FOUND: ObjectNotFoundError(
                    f"no object {key!r}{which} in bucket {self.bucket_name}"
                ),
            },
        ):
            response = self.bucket.s3().get_object(
                Bucket=self.bucket_name, Key=key, **self._version_args(version)
            )
            return bytes(response["Body"].read())

    def _superseded(self, key: str, version: str | None) -> ObjectSupersededError:
        current = self.stat(key)
        newer = current.version if current else "(deleted)"
        return ObjectSupersededError(
            f"s3://{self.bucket_name}/{key} version {version} was superseded by version {newer}"
        )

    @staticmethod
    def version_id(version: str) -> str | None:
        """The S3 version id ``version`` is; None when it is an ETag (an unversioned
        bucket)."""
        return None if _ETAG.fullmatch(version) else version

    def _version_args(self, version: str | None) -> dict[str, Any]:
        if version is None:
            return {}
        version_id = self.version_id(version)
        return {"IfMatch": f'"{version}"'} if version_id is None else {"VersionId": version_id}

    def stat(self, key: str, *, version: str | None = None) -> StoredObject | None:
        """The object (``version`` of it when given); None when it (or that version) is gone."""
        # A HEAD answer has no body to say why it is a 400: an SSE-C object read without
        # its key, or a version id S3 does not take. Neither means "gone".
        refused = PrimitiveError(
            f"S3 refused to describe {self._where(key)}"
            f"{f' version {version}' if version else ''} (400 Bad Request: an object "
            "encrypted with a customer-provided key (SSE-C), or a bad version id)"
        )
        with self.bucket.translated(
            "look up",
            "s3:GetObject",
            where=self._where(key),
            cases={_NOT_FOUND | _PRECONDITION_FAILED: None, _BAD_REQUEST: refused},
        ):
            head = self.bucket.s3().head_object(
                Bucket=self.bucket_name, Key=key, **self._version_args(version)
            )
            return StoredObject(
                key=key,
                version=_version_of(head),
                size=int(head.get("ContentLength", 0)),
                updated=head["LastModified"],
                content_type=head.get("ContentType"),
                metadata=decode_metadata(head.get("Metadata") or {}),
            )
        return None

    def list(self, *, prefix: str = "") -> Iterator[StoredObject]:
        """Current objects under ``prefix``, a page at a time (no content type/metadata)."""
        versioned = self.bucket.is_versioned()
        with self.bucket.translated("list", "s3:ListBucket"):
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
