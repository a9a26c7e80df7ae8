"""A folder used as a bucket.

Writes are atomic (temp file, fsync, rename, fsync of the folder) and each one gets
a generation number from the bucket's SQLite journal in the same step, so the event
exists on disk before the writer is told it succeeded. A write that cannot be made
durable (a full or read-only disk, under the folder or the journal) raises
``BucketFullError`` or ``BucketUnavailableError`` and leaves nothing behind: the key keeps
its previous file, or none. Keys are validated: no
absolute paths, no ``..``, no control characters, at most 1,024 bytes. Files put into
the folder by other programs are picked up by ``LocalFileChangeStream``.

The client mirrors the google-cloud-storage calls the BuildFlow tutorial uses::

    bucket_dep.bucket.blob(name).upload_from_file(file, content_type="image/png")

``objects()`` is the portable ``ObjectStore``. The folder keeps only the newest version
of a key: reading an older version raises ``ObjectSupersededError`` naming the newer
one, as the gcp and aws stacks do for a replaced object.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from tideflow.exceptions import (
    BucketFullError,
    BucketUnavailableError,
    InvalidKeyError,
    ObjectNotFoundError,
    ObjectSupersededError,
    PrimitiveError,
)
from tideflow.home import make_private_dir, state_path
from tideflow.io.keys import RESERVED_PREFIX, validate_key
from tideflow.io.local.journal import Journal, JournalWriteError, ObjectRecord
from tideflow.io.primitive import BucketPrimitive, PlanAction, PlanStep
from tideflow.io.strategies import ObjectStore, StoredObject
from tideflow.io.write_health import (
    WriteHealth,
    free_space_problem,
    out_of_space,
    write_failure_reason,
    write_health,
)

TEMP_DIR = f"{RESERVED_PREFIX}-tmp"
logger = logging.getLogger("tideflow.local")
_COPY_CHUNK = 1024 * 1024


class LocalBucket(BucketPrimitive):
    """A bucket backed by the folder ``path`` (relative paths live in the state dir)."""

    def __init__(self, path: str | os.PathLike[str], *, bucket_name: str | None = None) -> None:
        self._path = Path(path)
        self.bucket_name = bucket_name or self._path.name
        validate_key(self.bucket_name)

    @property
    def root(self) -> Path:
        return state_path(self._path)

    @property
    def journal_path(self) -> Path:
        return state_path("journal") / f"{self.bucket_name}.sqlite3"

    def journal(self) -> Journal:
        return Journal.open(self.journal_path)

    def write_health(self) -> WriteHealth:
        """Whether files can be written into the folder (its journal has its own)."""
        return write_health(self.root, f"bucket {self.bucket_name}", self.probe_write)

    def probe_write(self) -> str | None:
        """A small file written and synced in the folder, with room to spare: None, or
        what is still wrong."""
        temp_dir = self.root / TEMP_DIR
        try:
            make_private_dir(temp_dir)
            with tempfile.NamedTemporaryFile(dir=temp_dir, prefix="write-probe-") as probe:
                probe.write(bytes(4096))
                probe.flush()
                os.fsync(probe.fileno())
        except OSError as exc:
            return write_failure_reason(exc)
        return free_space_problem(temp_dir)

    def primitive_id(self) -> str:
        return f"local-bucket:{self.bucket_name}"

    def plan(self) -> PlanStep:
        exists = self.root.is_dir() and self.journal_path.exists()
        action = PlanAction.NO_CHANGE if exists else PlanAction.CREATE
        return self.step(action, str(self.root))

    def plan_destroy(self) -> PlanStep:
        exists = self.root.exists() or self.journal_path.exists()
        return self.step(PlanAction.DELETE if exists else PlanAction.NO_CHANGE, str(self.root))

    def apply(self) -> PlanStep:
        step = self.plan()
        try:
            make_private_dir(self.root / TEMP_DIR)
            self.journal()
        except OSError as exc:
            raise PrimitiveError(f"cannot create bucket folder {self.root}: {exc}") from exc
        return step

    def destroy(self) -> PlanStep:
        step = self.plan_destroy()
        shutil.rmtree(self.root, ignore_errors=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.journal_path}{suffix}").unlink(missing_ok=True)
        return step

    def client(self) -> LocalBucketClient:
        return LocalBucketClient(self)

    def objects(self) -> LocalObjectStore:
        return LocalObjectStore(self)


class LocalObjectStore(ObjectStore):
    def __init__(self, bucket: LocalBucket) -> None:
        self.bucket = bucket
        self.bucket_name = bucket.bucket_name
        self._client = LocalBucketClient(bucket)

    def put(
        self,
        key: str,
        data: IO[bytes],
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
        size: int | None = None,
    ) -> StoredObject:
        blob = self._client.blob(key)
        generation = blob.upload_from_file(data, content_type=content_type, metadata=metadata)
        found = self.stat(key)
        if found is None or found.version != str(generation):
            # Replaced again in the instant since: report what this write stored.
            return StoredObject(key, str(generation), 0, _now(), content_type, metadata or {})
        return found

    def get(self, key: str, *, version: str | None = None) -> bytes:
        blob = self._client.blob(key)
        data = blob.download_as_bytes()
        if version is not None:
            # Read first, check after: a replacement during the read is caught too.
            record = blob.record()
            current = None if record is None else str(record.generation)
            if current != version:
                if current is None:
                    raise ObjectNotFoundError(
                        f"no object {key!r} version {version} in bucket {self.bucket_name}"
                    )
                raise ObjectSupersededError(
                    f"{key!r} version {version} was superseded by version {current} "
                    "before it could be read"
                )
        return data

    def stat(self, key: str) -> StoredObject | None:
        blob = self._client.blob(key)
        record = blob.record()
        if record is None or not blob.exists():
            return None
        metadata = {k: str(v) for k, v in record.metadata.items() if k != "content_type"}
        return StoredObject(
            key=key,
            version=str(record.generation),
            size=record.size,
            updated=datetime.datetime.fromtimestamp(record.mtime_ns / 1e9, tz=datetime.UTC),
            content_type=record.metadata.get("content_type"),
            metadata=metadata,
        )

    def list(self, *, prefix: str = "") -> Iterator[StoredObject]:
        for blob in self._client.list_blobs(prefix=prefix):
            found = self.stat(blob.name)
            if found is not None:
                yield found


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class LocalBucketClient:
    """The run-time handle on a ``LocalBucket``, shaped like a google-cloud-storage Bucket."""

    def __init__(self, bucket: LocalBucket) -> None:
        self.primitive = bucket
        self.name = bucket.bucket_name
        self.root = bucket.root

    def blob(self, name: str) -> LocalBlob:
        return LocalBlob(self, validate_key(name))

    def get_blob(self, name: str) -> LocalBlob | None:
        blob = self.blob(name)
        return blob if blob.exists() else None

    def list_blobs(self, *, prefix: str = "") -> Iterator[LocalBlob]:
        for key in sorted(iter_keys(self.root)):
            if key.startswith(prefix):
                yield LocalBlob(self, key)


class LocalBlob:
    """One object in a local bucket."""

    def __init__(self, bucket: LocalBucketClient, name: str) -> None:
        self.bucket = bucket
        self.name = name
        self.path = bucket.root / name
        self.generation: int | None = None
        self._new_metadata: dict[str, Any] | None = None

    def exists(self) -> bool:
        return self.path.is_file() and not self.path.is_symlink()

    def record(self) -> ObjectRecord | None:
        """The journal's entry for this key: its generation, size and metadata."""
        return self.bucket.primitive.journal().get_object(self.name)

    @property
    def size(self) -> int | None:
        return self.path.stat().st_size if self.exists() else None

    @property
    def metadata(self) -> dict[str, Any]:
        if self._new_metadata is not None:
            return self._new_metadata
        record = self.record()
        return {} if record is None else record.metadata

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        """Metadata for the next upload, set before it as with google-cloud-storage."""
        self._new_metadata = dict(value)

    def upload_from_file(
        self,
        file_obj: IO[bytes],
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
    ) -> int:
        """Store the rest of ``file_obj``; returns the new generation.

        With ``max_bytes``, a longer stream raises ``ValueError`` and nothing is stored.
        ``BucketFullError`` (the disk is full) or ``BucketUnavailableError`` (read-only,
        I/O errors) when it cannot be made durable: nothing is stored then either.
        """
        temp_dir = self.bucket.root / TEMP_DIR
        object_metadata = dict(metadata if metadata is not None else self._new_metadata or {})
        if content_type:
            object_metadata["content_type"] = content_type
        temp: Path | None = None
        try:
            make_private_dir(temp_dir)
            fd, temp_name = tempfile.mkstemp(dir=temp_dir, prefix=uuid.uuid4().hex)
            temp = Path(temp_name)
            previous = temp.with_name(f"{temp.name}.previous")
            with os.fdopen(fd, "wb") as out:
                written = 0
                while chunk := file_obj.read(_COPY_CHUNK):
                    written += len(chunk)
                    if max_bytes is not None and written > max_bytes:
                        raise ValueError(f"object is larger than {max_bytes} bytes")
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            self.generation = self.bucket.primitive.journal().record_write(
                self.name,
                publish=lambda: self._publish(temp, previous),
                unpublish=lambda: self._unpublish(previous),
                metadata=object_metadata,
            )
            return self.generation
        except (OSError, JournalWriteError) as exc:
            raise self._not_stored(exc) from exc
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)
                previous.unlink(missing_ok=True)

    def upload_from_string(self, data: bytes | str, *, content_type: str | None = None) -> int:
        payload = data.encode() if isinstance(data, str) else data
        return self.upload_from_file(io.BytesIO(payload), content_type=content_type)

    def _publish(self, temp: Path, previous: Path) -> Path:
        """Put the new file in place, keeping the one it replaces as ``previous`` until
        the journal has committed."""
        if self.path.is_dir() and not self.path.is_symlink():
            raise InvalidKeyError(f"{self.name!r} is a folder in bucket {self.bucket.name}")
        make_private_dir(self.path.parent)
        with contextlib.suppress(FileNotFoundError):
            os.link(self.path, previous, follow_symlinks=False)
        os.replace(temp, self.path)
        return self.path  # the journal fsyncs its folder

    def _unpublish(self, previous: Path) -> None:
        """Undo ``_publish`` after a failed commit: the previous file back, or none."""
        if os.path.lexists(previous):
            os.replace(previous, self.path)
        else:
            self.path.unlink(missing_ok=True)

    def _not_stored(self, exc: OSError | JournalWriteError) -> BucketUnavailableError:
        """The error for a write that could not be made durable; a disk that refuses
        files goes to ``write_health`` (``/healthz``)."""
        if isinstance(exc, JournalWriteError):
            where, reason, full = "committing its event journal", exc.reason, exc.out_of_space
        else:
            where, reason, full = "writing the file", write_failure_reason(exc), out_of_space(exc)
            self.bucket.primitive.write_health().failed(reason)
        logger.warning("%s not stored in bucket %s: %s", self.name, self.bucket.name, exc)
        error = BucketFullError if full else BucketUnavailableError
        return error(f"bucket {self.bucket.name}: {reason} ({where})")

    def download_as_bytes(self) -> bytes:
        try:
            # O_NOFOLLOW: a symlink dropped into the folder must not expose other files.
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(
                f"no object {self.name!r} in bucket {self.bucket.name}"
            ) from exc
        except OSError as exc:
            raise ObjectNotFoundError(f"cannot read {self.name!r}: {exc.strerror}") from exc
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    def delete(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(
                f"no object {self.name!r} in bucket {self.bucket.name}"
            ) from exc
        self.bucket.primitive.journal().forget(self.name)


def iter_keys(root: Path) -> Iterator[str]:
    """Keys of the regular files under ``root``, skipping tideflow's own folders and links."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(RESERVED_PREFIX)]
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                yield path.relative_to(root).as_posix()
