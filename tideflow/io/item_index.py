"""A side table per list-of-records column, so item filters do not scan every row's list.

``ItemFilter`` ("rows with an item whose label is tabby / contains cat / scores >= 0.5")
over an unnested list reads every row's whole list: seconds at a million rows. For each
repeated record column of a table that also has a timestamp column (its newest-first
order), DuckDB and PostgreSQL tables keep ``<table>__<column>_items``: one row per item
with the row's id, the item's position, whether it is the row's best-scoring item,
whether it is the best-scoring item of its row with its text (first text field), the
row's timestamp, the item's scalar fields (text lower-cased, since filters ignore case)
and a hash of the row id. The two flags let "any item scores >= x" and "an item is
exactly y" pick one index row per table row, so they need no grouping. The sinks write it
in the same transaction as the rows; ``apply`` creates and back-fills it.

A filtered page is then picked from the side table (newest first, by the timestamp kept
there) and only that page's rows are read from the table (``tideflow.io.sql``). This
module is the part every warehouse shares; each adapter's ``item_index`` module holds its
DDL and inserts.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from tideflow.io.schema import ROW_ID_COLUMN, Field, Kind
from tideflow.io.sql import quote
from tideflow.io.strategies import ItemFilter

POSITION, BEST, FIRST, ORDER, KEY = "_pos", "_best", "_first", "_order", "_key"


@dataclasses.dataclass(frozen=True)
class ItemIndex:
    table: str  # the indexed table
    column: str  # its list-of-records column
    order_by: str  # its timestamp column
    fields: tuple[Field, ...]  # the records' scalar fields
    score: str | None  # the first number field: "best" is the item with the highest

    @property
    def text(self) -> str | None:
        """The first text field: ``_first`` marks a row's best item with each value of it."""
        return next((f.name for f in self.fields if f.kind is Kind.STRING), None)

    @property
    def name(self) -> str:
        return f"{self.table}__{self.column}_items"

    def rows(self, row_id: str, row: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The side-table rows of one table row (as ``row_values`` gives it)."""
        items = row.get(self.column) or []
        best = self._best(items)
        firsts = set(self._first_of_each_text(items).values())
        return [
            (
                row_id,
                position + 1,
                position == best,
                position in firsts,
                row.get(self.order_by),
                *(_lowered(f, item.get(f.name)) for f in self.fields),
                row_id,  # hashed by the INSERT into _key
            )
            for position, item in enumerate(items)
        ]

    def _best(self, items: list[dict[str, Any]]) -> int:
        """The position of the highest-scoring item (the first without a score); -1: none."""
        if not self.score:
            return 0 if items else -1
        scores = [item.get(self.score) for item in items]
        known = [s for s in scores if s is not None]
        return scores.index(max(known)) if known else -1

    def _first_of_each_text(self, items: list[dict[str, Any]]) -> dict[Any, int]:
        """Per text (any case): the position of its best-scoring, then first, item."""
        chosen: dict[Any, int] = {}
        for position, item in enumerate(items):
            text = item.get(self.text) if self.text else None
            key = text.lower() if isinstance(text, str) else text
            score = item.get(self.score) if self.score else None
            if key not in chosen:
                chosen[key] = position
            elif score is not None:
                held = items[chosen[key]].get(self.score) if self.score else None
                if held is None or score > held:
                    chosen[key] = position
        return chosen

    def usable_for(self, item: ItemFilter, order_by: str | None) -> bool:
        names = {f.name for f in self.fields}
        return (
            item.column == self.column
            and order_by == self.order_by
            and item.field in names
            and (item.score_field is None or item.score_field in names)
        )

    def matching_ids_sql(
        self, item: ItemFilter, *, like: bool = False
    ) -> tuple[str, dict[str, Any], bool]:
        """``SELECT row id, timestamp FROM items WHERE ...``, its params, and whether a row
        can match through several items (then the caller groups by row id).

        ``like``: "contains" as ``LIKE '%text%'`` (which a trigram index serves) rather than
        ``strpos``."""
        tests: list[str] = []
        params: dict[str, Any] = {}
        several = True
        if item.value is not None:
            field = quote(item.field)
            if item.contains and like:
                tests.append(f"{field} LIKE $item_like")
                escaped = re.sub(r"([\\%_])", r"\\\1", item.value.lower())
                params["item_like"] = f"%{escaped}%"
            elif item.contains:
                tests.append(f"strpos({field}, lower($item_value)) > 0")
            else:
                tests.append(f"{field} = lower($item_value)")
                if item.field == self.text and (
                    item.min_score is None or item.score_field == self.score
                ):
                    # The row's best item with this text stands for it: one per row.
                    tests.append(FIRST)
                    several = False
            params["item_value"] = item.value
        else:
            # Any item at least this sure <=> the row's best item is: one item per row.
            tests.append(BEST)
            several = False
        if item.score_field is not None and item.min_score is not None:
            tests.append(f"{quote(item.score_field)} >= $item_score")
            params["item_score"] = item.min_score
        sql = (
            f"SELECT {quote(ROW_ID_COLUMN)} AS _id, {ORDER} AS _o, {KEY} AS _k "
            f"FROM {quote(self.name)} "
            f"WHERE {' AND '.join(tests)}"
        )
        return sql, params, several


def _lowered(field: Field, value: Any) -> Any:
    """Text in lower case (item filters ignore case); other values as they are."""
    return value.lower() if field.kind is Kind.STRING and value is not None else value


def indexes_for(table: str, fields: Sequence[Field]) -> list[ItemIndex]:
    order_by = next((f.name for f in fields if f.kind is Kind.TIMESTAMP and not f.repeated), None)
    if order_by is None:
        return []
    found = []
    for field in fields:
        if field.repeated and field.kind is Kind.RECORD:
            scalars = tuple(f for f in field.fields if f.kind is not Kind.RECORD and not f.repeated)
            score = next((f.name for f in scalars if f.kind in (Kind.FLOAT, Kind.INTEGER)), None)
            if scalars:
                found.append(ItemIndex(table, field.name, order_by, scalars, score))
    return found
