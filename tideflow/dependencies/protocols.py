"""What the primitive dependencies hand out, as small Protocols a type checker follows.

They describe the calls the BuildFlow tutorial and this project make; the real objects
(google-cloud-storage's ``Bucket``/``Blob``, ``LocalBucketClient``/``LocalBlob``, the
warehouse readers) have more.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import IO, Any, Protocol

from tideflow.io.strategies import ItemFilter, ObjectStore
from tideflow.types import DeadLetter, QueryResult, SourceStats


class Blob(Protocol):
    """One object of a bucket client (``bucket.blob(name)``)."""

    @property
    def name(self) -> str: ...

    def upload_from_file(self, file_obj: IO[bytes], *, content_type: str | None = None) -> Any:
        """Store the rest of ``file_obj`` under this name."""
        ...

    def download_as_bytes(self) -> bytes: ...


class BucketClient(Protocol):
    """A bucket's native client, shaped like google-cloud-storage's ``Bucket``."""

    @property
    def name(self) -> str: ...

    def blob(self, name: str) -> Blob: ...

    def list_blobs(self, *, prefix: str = "") -> Iterator[Any]: ...


class TableQuery(Protocol):
    """Read access to a results table (``TableReader``)."""

    def query(self, sql: str, params: dict[str, Any] | None = None) -> QueryResult: ...

    def select(
        self,
        *,
        where: dict[str, Any] | None = None,
        item: ItemFilter | None = None,
        order_by: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> QueryResult: ...

    def count(
        self, *, where: dict[str, Any] | None = None, item: ItemFilter | None = None
    ) -> int: ...


class BucketDependency(Protocol):
    """What ``BucketDependencyBuilder`` hands out: ``.bucket``, the native client, and
    ``.objects``, the portable object store."""

    @property
    def bucket(self) -> BucketClient: ...

    @property
    def objects(self) -> ObjectStore: ...


class StreamSource(Protocol):
    """A file-change stream's run-time source, as endpoints see it (cheap counts)."""

    def stats(self) -> SourceStats: ...


class DeadLetters(Protocol):
    """A stream's dead-letter queue."""

    def list(self, *, limit: int = 100) -> list[DeadLetter]: ...

    def retry(self, ids: Sequence[str] | None = None) -> int: ...

    def count(self) -> int: ...


class StreamDependency(Protocol):
    """What ``StreamDependencyBuilder`` hands out: ``.source``, the stream's source, and
    ``.dead_letters``, its dead-letter queue."""

    @property
    def source(self) -> StreamSource: ...

    @property
    def dead_letters(self) -> DeadLetters: ...
