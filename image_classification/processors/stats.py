"""The numbers behind ``/stats`` and the geometry of its charts (drawn as SVG by stats.html).

Aggregates run in the warehouse (DuckDB or BigQuery SQL, chosen by the reader's dialect):
top labels (each image counted once, by its best label), images classified per minute,
upload-to-row latency p50/p95 per 10 minutes (``classified_at - upload``), and the models
in use. Failures by reason come from the failed events. Chart coordinates are computed
here so the template only places numbers into SVG attributes (it stays autoescaped, and
the page needs no script or inline style under its Content-Security-Policy).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from tideflow.dependencies.protocols import TableQuery

WINDOW = datetime.timedelta(hours=3)
LATENCY_BUCKET_MINUTES = 10
TOP_LABELS = 10


@dataclasses.dataclass(frozen=True)
class _Sql:
    top_label: str
    minute: str  # {x} -> the minute it falls in
    bucket: str  # {x} -> the LATENCY_BUCKET_MINUTES bucket it falls in
    millis_between: str  # {a}, {b} -> milliseconds from b to a
    p50: str
    p95: str


_DIALECTS = {
    "duckdb": _Sql(
        top_label="classifications[1].label",
        # Integer minutes group faster than truncated timestamps.
        minute="make_timestamp((epoch_ms({x}) // 60000) * 60000000)",
        bucket=(
            f"make_timestamp((epoch_ms({{x}}) // {LATENCY_BUCKET_MINUTES * 60000}) "
            f"* {LATENCY_BUCKET_MINUTES * 60000000})"
        ),
        millis_between="(epoch_ms({a}) - epoch_ms({b}))",
        p50="quantile_cont(ms, 0.5)",
        p95="quantile_cont(ms, 0.95)",
    ),
    "bigquery": _Sql(
        top_label="classifications[SAFE_OFFSET(0)].label",
        minute="TIMESTAMP_TRUNC({x}, MINUTE)",
        bucket=(
            f"TIMESTAMP_SECONDS(DIV(UNIX_SECONDS({{x}}), {LATENCY_BUCKET_MINUTES * 60}) "
            f"* {LATENCY_BUCKET_MINUTES * 60})"
        ),
        millis_between="TIMESTAMP_DIFF({a}, {b}, MILLISECOND)",
        p50="APPROX_QUANTILES(ms, 100)[OFFSET(50)]",
        p95="APPROX_QUANTILES(ms, 100)[OFFSET(95)]",
    ),
}


# ------------------------------------------------------------------ chart geometry


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
            width=round(column_width, 1),
            height=round(top + plot_height - y_of(value), 1),
            title=f"{when:%H:%M} UTC: {_format(value, unit)}",
        )
        for when, value in columns
        if start <= when <= end
    ]
    drawn_columns = [
        dataclasses.replace(c, width=min(c.width, left + plot_width - c.x)) for c in drawn_columns
    ]
    drawn_lines = []
    for name, series in lines:
        points = [(x_of(when), y_of(value), f"{when:%H:%M}") for when, value in series]
        drawn_lines.append(
            Line(
                name=name,
                points=" ".join(f"{x},{y}" for x, y, _ in points),
                dots=[(x, y, f"{name} {when} UTC") for x, y, when in points],
            )
        )
    hours = max(1, round(span / 3600))
    step = datetime.timedelta(minutes=30 if hours <= 3 else 60)
    first = start.replace(minute=0, second=0, microsecond=0)
    x_ticks = []
    tick = first
    while tick <= end:
        if tick >= start:
            x_ticks.append(Tick(x_of(tick), f"{tick:%H:%M}"))
        tick += step
    y_ticks = [Tick(y_of(y_max * i / 4), _format(y_max * i / 4, unit)) for i in range(5)]
    return TimeChart(
        width=width,
        height=height,
        left=left,
        top=top,
        plot_width=plot_width,
        plot_height=plot_height,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        columns=drawn_columns,
        lines=drawn_lines,
        unit=unit,
    )


# ------------------------------------------------------------------ the numbers


@dataclasses.dataclass(frozen=True)
class Model:
    model_id: str
    images: int
    last_used: datetime.datetime | None


@dataclasses.dataclass(frozen=True)
class Stats:
    total: int
    window_hours: float
    now: datetime.datetime
    top_labels: BarChart | None
    per_minute: TimeChart | None
    classified_in_window: int
    latency: TimeChart | None
    latency_p50: float | None
    latency_p95: float | None
    failures: BarChart | None
    failed_total: int
    models: list[Model]
    supported: bool


def failure_reason(error: str | None) -> str:
    """A short reason: the error's first clause, without numbers and paths that vary."""
    text = (error or "unknown").strip().splitlines()[0] if error else "unknown"
    text = re.split(r"[:(]", text, maxsplit=1)[0].strip() or text
    return text[:60]


def _aware(value: Any) -> datetime.datetime:
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC)


def compute(
    table: TableQuery,
    failure_errors: Sequence[str | None],
    *,
    failed_total: int | None = None,
    now: datetime.datetime | None = None,
    window: datetime.timedelta = WINDOW,
) -> Stats:
    """The page's numbers; failures by reason from ``failure_errors`` (the newest failures),
    ``failed_total`` all failures (default: as many as errors given)."""
    now = now or datetime.datetime.now(datetime.UTC)
    if failed_total is None:
        failed_total = len(failure_errors)
    since = now - window
    reasons = Counter(failure_reason(e) for e in failure_errors)
    failures = bar_chart(reasons.most_common(TOP_LABELS), len(failure_errors)) if reasons else None
    dialect = getattr(getattr(table, "dialect", None), "name", "")
    sql = _DIALECTS.get(dialect)
    total = table.count()
    if sql is None:
        return Stats(
            total, window.total_seconds() / 3600, now, None, None, 0, None, None, None,
            failures, failed_total, [], supported=False,
        )  # fmt: skip

    top = table.query(
        f"SELECT {sql.top_label} AS label, COUNT(*) AS n FROM {{table}} "
        f"GROUP BY label ORDER BY n DESC, label LIMIT {TOP_LABELS}"
    ).rows
    top_labels = bar_chart([(str(label), int(n)) for label, n in top], total) if top else None

    done_at = "COALESCE(classified_at, upload)"
    minutes = table.query(
        f"SELECT {sql.minute.format(x=done_at)} AS minute, COUNT(*) AS n FROM {{table}} "
        f"WHERE upload >= $since GROUP BY minute ORDER BY minute",
        {"since": since - datetime.timedelta(minutes=10)},
    ).rows
    per_minute_values = [(_aware(m), float(n)) for m, n in minutes if _aware(m) >= since]
    per_minute = time_chart(since, now, columns=per_minute_values, unit="")

    millis = sql.millis_between.format(a="classified_at", b="upload")
    latency_rows = table.query(
        f"SELECT {sql.bucket.format(x='upload')} AS bucket, {sql.p50} AS p50, "
        f"{sql.p95} AS p95 FROM (SELECT upload, {millis} AS ms FROM {{table}} "
        f"WHERE upload >= $since AND classified_at IS NOT NULL) AS recent "
        f"GROUP BY bucket ORDER BY bucket",
        {"since": since},
    ).rows
    overall = table.query(
        f"SELECT {sql.p50} AS p50, {sql.p95} AS p95 FROM (SELECT {millis} AS ms "
        f"FROM {{table}} WHERE upload >= $since AND classified_at IS NOT NULL) AS recent",
        {"since": since},
    ).rows
    latency = None
    if latency_rows:
        half = datetime.timedelta(minutes=LATENCY_BUCKET_MINUTES / 2)
        p50s = [(_aware(b) + half, float(p50)) for b, p50, _ in latency_rows]
        p95s = [(_aware(b) + half, float(p95)) for b, _, p95 in latency_rows]
        latency = time_chart(since, now, lines=[("p95", p95s), ("p50", p50s)], unit="ms")
    p50, p95 = overall[0] if overall and overall[0][0] is not None else (None, None)

    models = table.query(
        "SELECT model_id, COUNT(*) AS n, MAX(upload) AS last_used FROM {table} "
        "GROUP BY model_id ORDER BY last_used DESC LIMIT 10"
    ).rows
    return Stats(
        total=total,
        window_hours=window.total_seconds() / 3600,
        now=now,
        top_labels=top_labels,
        per_minute=per_minute,
        classified_in_window=int(sum(v for _, v in per_minute_values)),
        latency=latency,
        latency_p50=None if p50 is None else float(p50),
        latency_p95=None if p95 is None else float(p95),
        failures=failures,
        failed_total=failed_total,
        models=[
            Model(str(m), int(n), _aware(last) if last is not None else None)
            for m, n, last in models
        ],
        supported=True,
    )
