"""Table schemas derived from dataclasses, in a neutral form each warehouse maps to its types.

``str``, ``int``, ``float``, ``bool``, ``bytes``, ``datetime.datetime``, ``datetime.date``,
nested dataclasses (records), ``list[X]`` (repeated) and ``X | None`` (nullable).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import types
import typing
from typing import Any

ROW_ID_COLUMN = "_tideflow_row_id"


class Kind(enum.Enum):
    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    BYTES = "bytes"
    TIMESTAMP = "timestamp"
    DATE = "date"
    RECORD = "record"


_SCALARS: dict[type, Kind] = {
    str: Kind.STRING,
    int: Kind.INTEGER,
    float: Kind.FLOAT,
    bool: Kind.BOOLEAN,
    bytes: Kind.BYTES,
    datetime.datetime: Kind.TIMESTAMP,
    datetime.date: Kind.DATE,
}


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    repeated: bool = False
    nullable: bool = False
    fields: tuple[Field, ...] = ()


def schema_of(row_type: type) -> tuple[Field, ...]:
    """The fields of dataclass ``row_type``; a ``TypeError`` names any unsupported field."""
    if not (isinstance(row_type, type) and dataclasses.is_dataclass(row_type)):
        raise TypeError(f"a table schema must be a dataclass, got {row_type!r}")
    hints = typing.get_type_hints(row_type)
    return tuple(
        _field(f.name, hints[f.name], owner=row_type) for f in dataclasses.fields(row_type)
    )


def schema_problem(row_type: object) -> str | None:
    """Why ``row_type`` cannot be a table schema; None when it can (for ``.options``)."""
    try:
        schema_of(row_type)  # type: ignore[arg-type]
    except (TypeError, NameError) as exc:
        return str(exc)
    return None


def _field(name: str, annotation: Any, *, owner: type) -> Field:
    nullable = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"{owner.__name__}.{name}: only `X | None` unions are supported")
        nullable, annotation = True, args[0]
        origin = typing.get_origin(annotation)
    if origin is list:
        (item,) = typing.get_args(annotation) or (None,)
        inner = _field(name, item, owner=owner)
        if inner.repeated:
            raise TypeError(f"{owner.__name__}.{name}: lists of lists are not supported")
        return dataclasses.replace(inner, repeated=True, nullable=nullable)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return Field(name, Kind.RECORD, nullable=nullable, fields=schema_of(annotation))
    kind = _SCALARS.get(annotation) if isinstance(annotation, type) else None
    if kind is None:
        raise TypeError(f"{owner.__name__}.{name}: unsupported column type {annotation!r}")
    return Field(name, kind, nullable=nullable)


def row_values(row: Any) -> dict[str, Any]:
    """A dataclass row as plain values: records become dicts, lists stay lists."""
    if not dataclasses.is_dataclass(row) or isinstance(row, type):
        raise TypeError(f"a consumer must return dataclass rows, got {type(row).__name__}")
    return dataclasses.asdict(row)
