"""The geometry of the /stats charts: bars and time series as SVG coordinates.

Coordinates are computed here so that stats.html only places numbers into SVG attributes
(it stays autoescaped, and the page needs no script or inline style under its
Content-Security-Policy).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Callable, Sequence


@dataclasses.dataclass(frozen=True)
class Bar:
    label: str
    count: int
    share: float  # of all images, 0..1
    y: float
    width: float


@dataclasses.dataclass(frozen=True)
class BarChart:
    bars: list[Bar]
    width: int
    height: int
    bar_height: int
    label_width: int


@dataclasses.dataclass(frozen=True)
class Tick:
    position: float
    text: str


@dataclasses.dataclass(frozen=True)
class Column:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclasses.dataclass(frozen=True)
class Line:
    name: str
    points: str  # "x,y x,y ..." for <polyline points>
    dots: list[tuple[float, float, str]]


@dataclasses.dataclass(frozen=True)
class TimeChart:
    width: int
    height: int
    left: int
    top: int
    plot_width: int
    plot_height: int
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    columns: list[Column]
    lines: list[Line]
    unit: str


def bar_chart(
    counts: Sequence[tuple[str, int]], total: int, *, width: int = 720, bar_height: int = 26
) -> BarChart:
    label_width = 190
    value_room = 130  # "12,345 · 12.3%" right of the longest bar
    plot = width - label_width - value_room
    top = max((count for _, count in counts), default=1) or 1
    bars = [
        Bar(
            label=label,
            count=count,
            share=count / total if total else 0.0,
            y=i * bar_height,
            width=max(1.0, plot * count / top),
        )
        for i, (label, count) in enumerate(counts)
    ]
    return BarChart(
        bars=bars,
        width=width,
        height=max(1, len(bars)) * bar_height,
        bar_height=bar_height,
        label_width=label_width,
    )


def _nice_max(value: float, *, whole: bool) -> float:
    """The top of a 4-step axis above ``value``: 4 x a round step (whole steps for counts)."""
    wanted = max(value, 1e-9) / 4
    magnitude = 10 ** math.floor(math.log10(wanted))
    step = next(s * magnitude for s in (1, 2, 2.5, 5, 10) if wanted <= s * magnitude)
    if whole:
        step = max(1.0, math.ceil(step))
    return 4 * step


def _format(value: float, unit: str) -> str:
    if unit == "ms" and value >= 1000:
        return f"{value / 1000:g} s"
    return f"{value:,.0f}{' ' + unit if unit else ''}"


def time_chart(
    start: datetime.datetime,
    end: datetime.datetime,
    *,
    columns: Sequence[tuple[datetime.datetime, float]] = (),
    column_minutes: int = 1,
    lines: Sequence[tuple[str, Sequence[tuple[datetime.datetime, float]]]] = (),
    unit: str = "",
    width: int = 720,
    height: int = 220,
) -> TimeChart:
    left, top, bottom, right = 64, 12, 28, 12
    plot_width, plot_height = width - left - right, height - top - bottom
    span = (end - start).total_seconds() or 1.0
    values = [v for _, v in columns] + [v for _, series in lines for _, v in series]
    y_max = _nice_max(max(values, default=0.0), whole=unit == "")

    def x_of(when: datetime.datetime) -> float:
        when = min(max(when, start), end)
        return round(left + plot_width * (when - start).total_seconds() / span, 1)

    def y_of(value: float) -> float:
        return round(top + plot_height * (1 - value / y_max), 1)

    column_width = max(1.0, plot_width * column_minutes * 60 / span - 1)
    drawn_columns = [
        Column(
            x=x_of(when),
            y=y_of(value),
            width=round(min(column_width, left + plot_width - x_of(when)), 1),
            height=round(top + plot_height - y_of(value), 1),
            title=f"{when:%H:%M} UTC: {_format(value, unit)}",
        )
        for when, value in columns
        if start <= when <= end
    ]
    return TimeChart(
        width=width,
        height=height,
        left=left,
        top=top,
        plot_width=plot_width,
        plot_height=plot_height,
        x_ticks=_x_ticks(start, end, x_of),
        y_ticks=[Tick(y_of(y_max * i / 4), _format(y_max * i / 4, unit)) for i in range(5)],
        columns=drawn_columns,
        lines=[_line(name, series, x_of, y_of) for name, series in lines],
        unit=unit,
    )


def _line(
    name: str,
    series: Sequence[tuple[datetime.datetime, float]],
    x_of: Callable[[datetime.datetime], float],
    y_of: Callable[[float], float],
) -> Line:
    points = [(x_of(when), y_of(value), f"{when:%H:%M}") for when, value in series]
    return Line(
        name=name,
        points=" ".join(f"{x},{y}" for x, y, _ in points),
        dots=[(x, y, f"{name} {when} UTC") for x, y, when in points],
    )


def _x_ticks(
    start: datetime.datetime,
    end: datetime.datetime,
    x_of: Callable[[datetime.datetime], float],
) -> list[Tick]:
    """Every half hour (spans up to 3 hours) or hour, on the hour."""
    hours = max(1, round((end - start).total_seconds() / 3600))
    step = datetime.timedelta(minutes=30 if hours <= 3 else 60)
    ticks = []
    tick = start.replace(minute=0, second=0, microsecond=0)
    while tick <= end:
        if tick >= start:
            ticks.append(Tick(x_of(tick), f"{tick:%H:%M}"))
        tick += step
    return ticks
