"""The small row types the warehouse tests store: a name, a list of labels, a time."""

from __future__ import annotations

import dataclasses
import datetime


@dataclasses.dataclass
class Label:
    label: str
    confidence: float


@dataclasses.dataclass
class Row:
    name: str
    labels: list[Label]
    at: datetime.datetime
    note: str | None = None
