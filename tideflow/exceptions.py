"""Errors raised by tideflow.

Every error derives from ``TideflowError``; adapters translate provider SDK errors
(sqlite3, duckdb, google-cloud, boto3) into these at their boundary and keep the
original as ``__cause__``::

    TideflowError
    ├── ConfigError                 bad buildflow.yaml, entry point, stack or setting
    ├── DependencyError             a dependency cannot be analysed or built
    │   └── DependencyScopeError    a dependency depends on a narrower scope
    ├── PrimitiveError              plan / apply / destroy of a primitive failed
    ├── InvalidKeyError             an object key is unsafe (traversal, control chars, length)
    ├── BucketUnavailableError      an object cannot be stored now (read-only, I/O
    │   │                           error); nothing was stored, the same put may work later
    │   └── BucketFullError         ... because its disk is full (ENOSPC, quota)
    ├── ObjectNotFoundError         an object is not in the bucket
    │   └── ObjectSupersededError   a newer version replaced the event's version (also
    │                               a NonRetryableError: it can never be read again)
    ├── SourceError                 a source could not pull, ack or nack
    │   ├── MalformedEventError     a message is not an event the source can read
    │   └── SourceUnavailableError  the queue cannot be written now (the local journal's
    │                               disk is full or read-only): the worker retries acks
    │                               and nacks with backoff
    ├── SinkError                   a sink could not write rows
    │   ├── RowError                the warehouse refused some rows (``rejected`` says which)
    │   └── SinkUnavailableError    the warehouse cannot be written now (I/O, connection):
    │                               the worker retries with backoff, burning no attempt
    ├── ReadError                   a table or warehouse could not be read
    │   └── WarehouseBusyError      another process holds the (DuckDB) warehouse file
    ├── ReplicaError                a replica died, timed out, or could not start
    ├── InvalidQueryError           select() paging outside what every warehouse accepts
    └── NonRetryableError           raised by a consumer: dead-letter the event now
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any


class TideflowError(Exception):
    """Root of every error tideflow raises."""


class ConfigError(TideflowError):
    """The project configuration, entry point, stack or a setting is wrong."""


class DependencyError(TideflowError):
    """A dependency cannot be analysed or constructed."""


class DependencyScopeError(DependencyError):
    """A dependency asks for another one that lives in a narrower scope."""


class PrimitiveError(TideflowError):
    """A primitive could not be planned, applied or destroyed."""


class InvalidKeyError(TideflowError, ValueError):
    """An object key is not safe to store."""


class BucketUnavailableError(TideflowError):
    """An object cannot be stored now (a read-only disk, an I/O error, a journal that
    cannot be written); nothing was stored and the same put may succeed later."""


class BucketFullError(BucketUnavailableError):
    """An object cannot be stored because the disk holding the bucket (or its journal)
    is full or over quota; nothing was stored."""


class ObjectNotFoundError(TideflowError, LookupError):
    """The requested object does not exist in the bucket."""


class SourceError(TideflowError):
    """A source failed to pull, acknowledge or release events."""


class MalformedEventError(SourceError, ValueError):
    """A message is not an event the source can read (it is dead-lettered at once)."""


class SourceUnavailableError(SourceError):
    """The queue cannot take a write now (the local journal's disk is full, read-only or
    failing); nothing changed and the same call may succeed later."""


class SinkError(TideflowError):
    """A sink failed to write rows."""


class RowError(SinkError):
    """The warehouse refused some rows of a batch; the others were written.

    ``rejected`` maps each refused row id to the warehouse's reason.
    """

    def __init__(self, message: str, *, rejected: dict[str, str]) -> None:
        super().__init__(message)
        self.rejected = rejected


class SinkUnavailableError(SinkError):
    """The warehouse is unreachable or failing for now (I/O, connection, transaction
    conflicts); nothing was written and the same write may succeed later."""


class ReadError(TideflowError):
    """A table or warehouse could not be read."""


class WarehouseBusyError(ReadError):
    """Another process holds the warehouse file (DuckDB allows one)."""


class ReplicaError(TideflowError):
    """A replica died, timed out, or could not build its dependencies."""


class InvalidQueryError(TideflowError, ValueError):
    """A ``select`` asked for a ``limit``/``offset`` outside the portable bounds."""


class NonRetryableError(TideflowError):
    """Raised by a consumer for an event that can never succeed (a corrupt file).

    The event goes to the dead-letter list at once with this message, instead of
    being retried until its attempts run out.
    """


class ObjectSupersededError(ObjectNotFoundError, NonRetryableError):
    """The event's object version was replaced by a newer one before it was read.

    Every stack fails such an event the same way, naming the newer version; the newer
    version has its own event.
    """


# BuildFlow apps raise ``buildflow.exceptions.HTTPException`` from endpoints: FastAPI's,
# imported on first use so that commands which never serve HTTP start without FastAPI.
if TYPE_CHECKING:
    from fastapi import HTTPException as HTTPException


def __getattr__(name: str) -> Any:
    if name == "HTTPException":
        from fastapi import HTTPException

        return HTTPException
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
