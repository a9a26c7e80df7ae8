"""The numbers behind ``/stats`` (its charts' geometry: ``processors/charts.py``).

Aggregates run in the warehouse, in its own SQL (``STATS_SQL``, chosen by the reader's
``dialect``: DuckDB, PostgreSQL, BigQuery; another warehouse is an
``UnsupportedWarehouseError``, never empty charts): top labels (each image counted once,
by its best label), images classified per minute, upload-to-row latency p50/p95 per 10
minutes (``classified_at - upload``), and the models in use. Failures by reason come from
the failed events.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from image_classification.processors.charts import BarChart, TimeChart, bar_chart, time_chart
from tideflow.io.strategies import TableReader

WINDOW = datetime.timedelta(hours=3)
LATENCY_BUCKET_MINUTES = 10
TOP_LABELS = 10
_BUCKET_SECONDS = LATENCY_BUCKET_MINUTES * 60


@dataclasses.dataclass(frozen=True, kw_only=True)
class StatsSql:
    """The warehouse's own SQL for what the charts need."""

    top_label: str  # the label of the first item of ``classifications``
    minute: str  # {x} -> the minute it falls in
    bucket: str  # {x} -> the LATENCY_BUCKET_MINUTES bucket it falls in
    millis_between: str  # {a}, {b} -> milliseconds from b to a
    p50: str  # of ``ms``
    p95: str


# By ``TableReader.dialect.name``.
STATS_SQL = {
    "duckdb": StatsSql(
        top_label="classifications[1].label",
        # Integer minutes group faster than truncated timestamps.
        minute="make_timestamp((epoch_ms({x}) // 60000) * 60000000)",
        bucket=f"make_timestamp((epoch_ms({{x}}) // {_BUCKET_SECONDS * 1000}) "
        f"* {_BUCKET_SECONDS * 1_000_000})",
        millis_between="(epoch_ms({a}) - epoch_ms({b}))",
        p50="quantile_cont(ms, 0.5)",
        p95="quantile_cont(ms, 0.95)",
    ),
    "postgresql": StatsSql(
        top_label="(classifications->0->>'label')",
        minute="date_trunc('minute', {x})",
        bucket=f"to_timestamp(floor(extract(epoch FROM {{x}}) / {_BUCKET_SECONDS}) "
        f"* {_BUCKET_SECONDS})",
        millis_between="(extract(epoch FROM ({a} - {b})) * 1000)",
        p50="percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)",
        p95="percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)",
    ),
    "bigquery": StatsSql(
        top_label="classifications[SAFE_OFFSET(0)].label",
        minute="TIMESTAMP_TRUNC({x}, MINUTE)",
        bucket=f"TIMESTAMP_SECONDS(DIV(UNIX_SECONDS({{x}}), {_BUCKET_SECONDS}) "
        f"* {_BUCKET_SECONDS})",
        millis_between="TIMESTAMP_DIFF({a}, {b}, MILLISECOND)",
        p50="APPROX_QUANTILES(ms, 100)[OFFSET(50)]",
        p95="APPROX_QUANTILES(ms, 100)[OFFSET(95)]",
    ),
}


class UnsupportedWarehouseError(Exception):
    """``STATS_SQL`` has no entry for the warehouse's dialect."""


def stats_sql(table: TableReader) -> StatsSql:
    """The SQL of ``table``'s warehouse; ``UnsupportedWarehouseError`` naming it if none."""
    name = table.dialect.name
    found = STATS_SQL.get(name)
    if found is None:
        raise UnsupportedWarehouseError(
            f"/stats has no SQL for the {name!r} warehouse (it has {', '.join(STATS_SQL)}): "
            "add its queries to STATS_SQL in image_classification/processors/stats.py"
        )
    return found


@dataclasses.dataclass(frozen=True)
class Model:
    model_id: str
    images: int
    last_used: datetime.datetime | None


@dataclasses.dataclass(frozen=True)
class Latency:
    """Upload to row, over the window: per bucket (``chart``) and overall."""

    chart: TimeChart | None
    p50: float | None
    p95: float | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Stats:
    total: int
    window_hours: float
    now: datetime.datetime
    top_labels: BarChart | None
    per_minute: TimeChart
    classified_in_window: int
    latency: Latency
    failures: BarChart | None
    failed_total: int
    models: list[Model]


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


def compute_stats(
    table: TableReader,
    failure_errors: Sequence[str | None],
    *,
    failed_total: int | None = None,
    now: datetime.datetime | None = None,
    window: datetime.timedelta = WINDOW,
) -> Stats:
    """The page's numbers; failures by reason from ``failure_errors`` (the newest failures),
    ``failed_total`` all failures (default: as many as errors given).

    ``UnsupportedWarehouseError`` when ``STATS_SQL`` lacks the table's warehouse.
    """
    sql = stats_sql(table)
    now = now or datetime.datetime.now(datetime.UTC)
    since = now - window
    total = table.count()
    per_minute = _per_minute(table, sql, since=since)
    return Stats(
        total=total,
        window_hours=window.total_seconds() / 3600,
        now=now,
        top_labels=_top_labels(table, sql, total=total),
        per_minute=time_chart(since, now, columns=per_minute, unit=""),
        classified_in_window=int(sum(count for _, count in per_minute)),
        latency=_latency(table, sql, since=since, now=now),
        failures=_failures(failure_errors),
        failed_total=len(failure_errors) if failed_total is None else failed_total,
        models=_models(table),
    )


def _top_labels(table: TableReader, sql: StatsSql, *, total: int) -> BarChart | None:
    top = table.query(
        f"SELECT {sql.top_label} AS label, COUNT(*) AS n FROM {{table}} "
        f"GROUP BY label ORDER BY n DESC, label LIMIT {TOP_LABELS}"
    ).rows
    return bar_chart([(str(label), int(n)) for label, n in top], total) if top else None


def _per_minute(
    table: TableReader, sql: StatsSql, *, since: datetime.datetime
) -> list[tuple[datetime.datetime, float]]:
    """Images classified in each minute since ``since``."""
    done_at = "COALESCE(classified_at, upload)"
    minutes = table.query(
        f"SELECT {sql.minute.format(x=done_at)} AS minute, COUNT(*) AS n FROM {{table}} "
        f"WHERE upload >= $since GROUP BY minute ORDER BY minute",
        {"since": since - datetime.timedelta(minutes=10)},
    ).rows
    return [(_aware(m), float(n)) for m, n in minutes if _aware(m) >= since]


def _latency(
    table: TableReader, sql: StatsSql, *, since: datetime.datetime, now: datetime.datetime
) -> Latency:
    millis = sql.millis_between.format(a="classified_at", b="upload")
    recent = (
        f"SELECT upload, {millis} AS ms FROM {{table}} "
        "WHERE upload >= $since AND classified_at IS NOT NULL"
    )
    buckets = table.query(
        f"SELECT {sql.bucket.format(x='upload')} AS bucket, {sql.p50} AS p50, "
        f"{sql.p95} AS p95 FROM ({recent}) AS recent GROUP BY bucket ORDER BY bucket",
        {"since": since},
    ).rows
    overall = table.query(
        f"SELECT {sql.p50} AS p50, {sql.p95} AS p95 FROM ({recent}) AS recent",
        {"since": since},
    ).rows
    chart = None
    if buckets:
        half = datetime.timedelta(minutes=LATENCY_BUCKET_MINUTES / 2)
        p50s = [(_aware(b) + half, float(p50)) for b, p50, _ in buckets]
        p95s = [(_aware(b) + half, float(p95)) for b, _, p95 in buckets]
        chart = time_chart(since, now, lines=[("p95", p95s), ("p50", p50s)], unit="ms")
    p50, p95 = overall[0] if overall and overall[0][0] is not None else (None, None)
    return Latency(
        chart=chart,
        p50=None if p50 is None else float(p50),
        p95=None if p95 is None else float(p95),
    )


def _failures(failure_errors: Sequence[str | None]) -> BarChart | None:
    reasons = Counter(failure_reason(e) for e in failure_errors)
    return bar_chart(reasons.most_common(TOP_LABELS), len(failure_errors)) if reasons else None


def _models(table: TableReader) -> list[Model]:
    models = table.query(
        "SELECT model_id, COUNT(*) AS n, MAX(upload) AS last_used FROM {table} "
        "GROUP BY model_id ORDER BY last_used DESC LIMIT 10"
    ).rows
    return [
        Model(str(m), int(n), _aware(last) if last is not None else None) for m, n, last in models
    ]
