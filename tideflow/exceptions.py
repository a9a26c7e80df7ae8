"""Errors raised by tideflow.

Every error derives from ``TideflowError``; adapters translate provider SDK errors
(sqlite3, duckdb, google-cloud, boto3) into these at their boundary and keep the
original as ``__cause__``::

    TideflowError
    ├── ConfigError              bad buildflow.yaml, entry point, stack or setting
    ├── DependencyError          a dependency cannot be analysed or built
    │   └── DependencyScopeError a dependency depends on a narrower scope
    ├── PrimitiveError           plan / apply / destroy of a primitive failed
    ├── InvalidKeyError          an object key is unsafe (traversal, control chars, length)
    ├── ObjectNotFoundError      an object is not in the bucket
    ├── SourceError              a source could not pull, ack or nack
    ├── SinkError                a sink could not write rows
    └── NonRetryableError        raised by a consumer: dead-letter the event now
"""

from __future__ import annotations


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


class ObjectNotFoundError(TideflowError, LookupError):
    """The requested object does not exist in the bucket."""


class SourceError(TideflowError):
    """A source failed to pull, acknowledge or release events."""


class SinkError(TideflowError):
    """A sink failed to write rows."""


class NonRetryableError(TideflowError):
    """Raised by a consumer for an event that can never succeed (a corrupt file).

    The event goes to the dead-letter list at once with this message, instead of
    being retried until its attempts run out.
    """
