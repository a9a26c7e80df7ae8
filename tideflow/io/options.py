"""Checks of primitives' options: what is wrong with a value, or None when it is fine.

A primitive declares its options in ``Primitive.option_checks`` (name -> check); both
``.options(...)`` and ``check_options()`` run these, so a constructor argument, an
``.options()`` call and an attribute set since are all checked the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tideflow.io.schema import schema_problem

# What is wrong with an option's value; None when it is fine.
OptionCheck = Callable[[Any], str | None]


def flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be True or False"


def text(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def whole_number(low: int, high: int, why: str = "") -> OptionCheck:
    """Whole numbers from ``low`` to ``high``; ``why`` says where the range comes from."""

    def check(value: Any) -> str | None:
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return None
        return f"must be a whole number from {low} to {high}{why}"

    return check


def seconds(low: float, high: float | None, why: str = "", *, above: bool = False) -> OptionCheck:
    """Seconds from ``low`` (more than ``low`` when ``above``) to ``high`` (None: no limit)."""

    def check(value: Any) -> str | None:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and (low < value if above else low <= value) and (high is None or value <= high):
            return None
        least = f"more than {low:g}" if above else f"{low:g}"
        if high is None:
            return f"must be {least} seconds or more{why}"
        return f"must be {least} to {high:g} seconds{why}"

    return check


def table_schema(value: Any) -> str | None:
    """A row dataclass, or None until the consumer's return type gives it."""
    return None if value is None else schema_problem(value)
