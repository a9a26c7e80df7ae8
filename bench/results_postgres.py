"""Results queries on PostgreSQL at scale: the lists scanned vs the item index, same run.

    .venv/bin/python bench/results_postgres.py [--rows 1000000] [--runs 10] [--scan-runs 3]
                                               [--out bench/results/results_postgres.json]

Starts a throwaway PostgreSQL 15 cluster (as the aws tests do: fsync off, but synchronous
commits), makes the app's table with ``PostgresTable`` and fills it in SQL with ``--rows``
rows shaped like the consumer's (ImageNet labels, top-5 confidences, uploads over six
hours). Then times what the results API asks for each filter (a page of 50 newest first, and
the total) first with the reader scanning every row's list (``indexes`` emptied: the code
before the index), then after ``apply`` adds the index on the upload time and back-fills the
item index (timed too; it vacuums what it filled). The filled table is vacuumed, as
autovacuum would do after a bulk insert. Prints a table and the ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.results_queries import timed  # noqa: E402
from bench.results_table import LABELS, current_model_id  # noqa: E402
from image_classification.schemas import ImageClassificationRow  # noqa: E402
from tests.aws.conftest import PostgresCluster  # noqa: E402
from tideflow.io.postgres import PostgresDatabase, PostgresTable  # noqa: E402
from tideflow.io.postgres.table import PostgresReader  # noqa: E402
from tideflow.io.strategies import ItemFilter  # noqa: E402

TABLE = "image_classification"


def fill(table: PostgresTable, rows: int) -> None:
    """``rows`` made-up rows in one INSERT ... SELECT (no item index rows: apply adds them)."""
    labels = LABELS.read_text().splitlines()
    with table.database.connection() as conn:
        conn.execute(
            f"""
            INSERT INTO {TABLE} (image_id, image_name, upload, classifications, model_id,
                width, height, size_bytes, content_type, latency_ms, classified_at,
                _tideflow_row_id)
            SELECT 'img-' || i, 'photo-' || i || '.jpg', upload,
                (SELECT jsonb_agg(jsonb_build_object(
                    'label', (%(labels)s::text[])[1 + (abs(hashint8(i * 7 + k))
                        %% 1000 * (abs(hashint8(i * 13 + k)) %% 1000) / 1000)],
                    'confidence', round((0.9 / (k + 1) ^ 2
                        * (0.5 + (abs(hashint8(i)) %% 500) / 1000.0))::numeric, 4))
                    ORDER BY k)
                 FROM generate_series(0, 4) AS k),
                %(model_id)s, 640, 480, 100000, 'image/jpeg', 20.0, upload, 'bench/' || i
            FROM (SELECT i, now() - make_interval(secs => (%(rows)s - i) * 21600.0 / %(rows)s)
                  AS upload FROM generate_series(1, %(rows)s) AS i) AS numbered
            """,
            {"labels": labels, "model_id": current_model_id(), "rows": rows},
        )
        conn.commit()
    # What autovacuum does soon after a bulk insert (visibility map, statistics).
    with psycopg.connect(table.database.url, autocommit=True) as conn:
        conn.execute(f"VACUUM (ANALYZE) {TABLE}")


def queries(common_label: str, rows: int) -> dict[str, tuple[ItemFilter | None, int]]:
    """What the results API reads per filter: (item filter, offset)."""
    label = ItemFilter("classifications", "label", value=common_label)
    return {
        "results": (None, 0),
        "label": (label, 0),
        "q=cat": (ItemFilter("classifications", "label", value="cat", contains=True), 0),
        "q=TERRIER": (ItemFilter("classifications", "label", value="TERRIER", contains=True), 0),
        "min_confidence=0.5": (
            ItemFilter("classifications", "label", score_field="confidence", min_score=0.5),
            0,
        ),
        "label+min_confidence=0.3": (
            ItemFilter(
                "classifications",
                "label",
                value=common_label,
                score_field="confidence",
                min_score=0.3,
            ),
            0,
        ),
        "deep page": (None, max(0, rows - 1000)),
        "label, offset 2000": (label, 2000),
    }


def page_and_total(reader: PostgresReader, item: ItemFilter | None, offset: int) -> None:
    reader.select(item=item, order_by="upload", limit=50, offset=offset)
    reader.count(item=item)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--scan-runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/results_postgres.json")
    args = parser.parse_args()

    cluster = PostgresCluster()
    # As PostgreSQL ships: VACUUM cannot mark pages all-visible (so counts cannot be
    # index-only) while their inserts' asynchronous commits are not yet flushed.
    cluster.options = cluster.options.replace("synchronous_commit=off", "synchronous_commit=on")
    cluster.init()
    cluster.start()
    try:
        # The throwaway cluster has no TLS, which tideflow otherwise verifies.
        database = PostgresDatabase(f"{cluster.url}/postgres?sslmode=disable")
        table = PostgresTable(database, TABLE).options(schema=ImageClassificationRow)
        table.apply()
        (index,) = table.item_indexes()
        order_index = table._order_index()
        assert order_index is not None
        with table.database.connection() as conn:  # the table as it was before the indexes
            conn.execute(f'DROP TABLE "{index.name}"')
            conn.execute(f'DROP INDEX "{order_index[0]}"')
            conn.commit()
        started = time.perf_counter()
        fill(table, args.rows)
        print(f"filled {args.rows:,} rows in {time.perf_counter() - started:.0f} s")

        scanning = table.reader()
        scanning.indexes = []
        top = scanning.query(
            "SELECT c->>'label', COUNT(*) FROM {table}, jsonb_array_elements(classifications) c "
            "WHERE image_id IN (SELECT image_id FROM {table} LIMIT 2000) "
            "GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
        )
        common = str(top.rows[0][0])
        shapes = queries(common, args.rows)
        results: dict[str, dict[str, dict[str, float]]] = {}
        for name, (item, offset) in shapes.items():
            results[name] = {
                "scan": timed(
                    lambda i=item, o=offset: page_and_total(scanning, i, o), args.scan_runs
                )
            }
            print(f"scan   {name:26} {results[name]['scan']}", flush=True)

        started = time.perf_counter()
        table.apply()  # creates the indexes and back-fills the item index
        backfill_s = round(time.perf_counter() - started, 1)
        print(f"apply made the indexes (item index back-filled) in {backfill_s} s")
        indexed = table.reader()
        for name, (item, offset) in shapes.items():
            results[name]["index"] = timed(
                lambda i=item, o=offset: page_and_total(indexed, i, o), args.runs
            )
            ratio = results[name]["scan"]["p50_ms"] / max(results[name]["index"]["p50_ms"], 0.1)
            results[name]["scan/index p50"] = {"x": round(ratio, 1)}
            print(f"index  {name:26} {results[name]['index']}  ({ratio:.1f}x)", flush=True)
    finally:
        cluster.stop()

    print(f"\n{'page of 50 + total, ms':28} {'scan p50/p95':>16} {'index p50/p95':>16} {'x':>6}")
    for name, found in results.items():
        scan, index_ = found["scan"], found["index"]
        print(
            f"{name:28} {scan['p50_ms']:>8} /{scan['p95_ms']:>6} "
            f"{index_['p50_ms']:>8} /{index_['p95_ms']:>6} {found['scan/index p50']['x']:>6}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "rows": args.rows,
                "backfill_s": backfill_s,
                "common_label": common,
                "timings": results,
            },
            indent=2,
        )
    )
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
