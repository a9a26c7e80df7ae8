"""How values cross the admin socket: JSON, with what JSON lacks tagged so it comes back
as it left.

A remote reader must hand its caller what a local one would (a ``datetime``, not its ISO
text; a ``QueryResult``, not a dict), so every value that JSON cannot carry travels as
``{"$type": NAME, "$value": ...}``: timestamps, dates, times, durations, decimals, UUIDs,
bytes, paths, NaN and infinities, and the few tideflow records the protocol speaks. A
dict that happens to hold a ``"$type"`` key is tagged too, so nothing is taken for a tag.

Only the standard library and tideflow's own types: the client is on the path of quick
commands such as ``tideflow status``.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import math
import uuid
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any

from tideflow.io.strategies import Dialect, ItemFilter
from tideflow.types import DeadLetter, FileChangeEvent, QueryResult

_TAG, _VALUE = "$type", "$value"

# Scalars: name -> (type, to text, from text). Order matters: a datetime is also a date.
_SCALARS: list[tuple[str, type, Callable[[Any], Any], Callable[[Any], Any]]] = [
    ("datetime", datetime.datetime, datetime.datetime.isoformat, datetime.datetime.fromisoformat),
    ("date", datetime.date, datetime.date.isoformat, datetime.date.fromisoformat),
    ("time", datetime.time, datetime.time.isoformat, datetime.time.fromisoformat),
    (
        "timedelta",
        datetime.timedelta,
        lambda span: [span.days, span.seconds, span.microseconds],
        lambda parts: datetime.timedelta(*parts),
    ),
    ("decimal", decimal.Decimal, str, decimal.Decimal),
    ("uuid", uuid.UUID, str, uuid.UUID),
    ("bytes", bytes, bytes.hex, bytes.fromhex),
    ("path", PurePath, str, Path),
]
_FROM_TEXT = {name: parse for name, _, _, parse in _SCALARS} | {"float": float}

# Records, by the name they travel under; a subclass (a provider's event) travels as
# its registered base, with the base's fields only (an event's bucket reader stays home).
_RECORDS: dict[str, type] = {
    "QueryResult": QueryResult,
    "ItemFilter": ItemFilter,
    "Dialect": Dialect,
    "DeadLetter": DeadLetter,
    "FileChangeEvent": FileChangeEvent,
}
_LOCAL_ONLY_FIELDS = frozenset({"reader"})


def encode(value: Any) -> Any:
    """``value`` as JSON-ready data (lists, dicts, strings, numbers, booleans, None)."""
    if isinstance(value, float) and not math.isfinite(value):  # JSON has no NaN
        return {_TAG: "float", _VALUE: repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        data = {str(k): encode(v) for k, v in value.items()}
        return {_TAG: "dict", _VALUE: data} if _TAG in data else data
    for name, kind, to_text, _ in _SCALARS:
        if isinstance(value, kind):
            return {_TAG: name, _VALUE: to_text(value)}
    for name, record in _RECORDS.items():
        if isinstance(value, record):
            fields = {
                f.name: encode(getattr(value, f.name))
                for f in dataclasses.fields(record)
                if f.init and f.name not in _LOCAL_ONLY_FIELDS
            }
            return {_TAG: name, _VALUE: fields}
    raise TypeError(f"cannot send a {type(value).__name__} through the admin socket")


def decode(data: Any) -> Any:
    """What ``encode`` was given (tuples come back as lists, except in a QueryResult's rows)."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if _TAG not in data:
        return {k: decode(v) for k, v in data.items()}
    name, value = data[_TAG], data[_VALUE]
    if name == "dict":
        return {k: decode(v) for k, v in value.items()}
    if name in _FROM_TEXT:
        return _FROM_TEXT[name](value)
    record = _RECORDS[name]
    fields = {k: decode(v) for k, v in value.items()}
    if record is QueryResult:
        fields["rows"] = [tuple(row) for row in fields["rows"]]
    return record(**fields)
