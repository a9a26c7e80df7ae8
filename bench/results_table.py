"""Fill the app's DuckDB results table with made-up rows, fast (one INSERT ... SELECT).

    .venv/bin/python bench/results_table.py DUCKDB_FILE ROWS

Rows look like the consumer's: ids of ``uploads/<n>.jpg``, real ImageNet labels with
top-5 confidences summing to at most 1, uploads spread over the last ``hours`` hours.
Used by bench/results_queries.py and by tests that need many rows. The item index is
back-filled for the new rows, as the sink would have written it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

LABELS = Path(__file__).resolve().parent.parent / ("image_classification/model/imagenet_labels.txt")


def current_model_id() -> str:
    """The model the app runs now (MODEL/ENGINE): the results pages show its rows."""
    from image_classification.processors.results_api import current_model_id
    from image_classification.settings import get_settings

    return current_model_id(get_settings())


def fill(
    connection: duckdb.DuckDBPyConnection,
    rows: int,
    *,
    table: str = "image_classification",
    start: int = 0,
    hours: float = 6.0,
    with_row_ids: bool = True,
) -> None:
    """Insert ``rows`` rows numbered from ``start`` into ``table`` (which must exist)."""
    labels = LABELS.read_text().splitlines()
    model_id = current_model_id()
    # Label popularity is skewed the way real photo sets are: a few labels are common.
    row_id = ", 'bench/' || i AS \"_tideflow_row_id\"" if with_row_ids else ""
    connection.execute(
        f"""
        INSERT INTO "{table}" BY NAME
        WITH numbered AS (
            SELECT i, hash(i) AS h FROM range({start}, {start + rows}) AS t(i)
        ),
        picked AS (
            SELECT i, h, $labels AS names,
                [CAST(((h >> (k * 10)) % 1000) * ((h >> (k * 10 + 5)) % 1000) / 1000 AS INTEGER)
                 FOR k IN range(5)] AS picks
            FROM numbered
        )
        SELECT
            replace(replace(rtrim(to_base64(encode('uploads/' || printf('%08x', i) || '.jpg')),
                '='), '+', '-'), '/', '_') || '.' || (i + 1) AS image_id,
            'photo-' || i || '.jpg' AS image_name,
            now() - INTERVAL 2 SECOND
                - to_microseconds(CAST(({rows + start} - i) * {hours} * 3600e6
                    / {rows + start} AS BIGINT)) AS upload,
            [{{'label': names[picks[k + 1] + 1],
               'confidence': round(0.9 / (k + 1) ** 2 * (0.5 + ((h >> 7) % 500) / 1000.0), 4)}}
             FOR k IN range(5)] AS classifications,
            $model_id AS model_id,
            640 + (h % 3000)::INTEGER AS width,
            480 + (h % 2000)::INTEGER AS height,
            100000 + (h % 5000000)::INTEGER AS size_bytes,
            'image/jpeg' AS content_type,
            5 + ((h >> 3) % 4000) / 100.0 AS latency_ms,
            upload + to_microseconds(CAST(1000 * (40 + ((h >> 11) % 400)
                + CASE WHEN (h >> 13) % 20 = 0 THEN 1500 ELSE 0 END) AS BIGINT)) AS classified_at
            {row_id}
        FROM picked
        """,
        {"labels": labels, "model_id": model_id},
    )
    # The item index the sink keeps (tideflow/io/duckdb/item_index.py), when the table has it.
    from image_classification.schemas import ImageClassificationRow
    from tideflow.io.duckdb.item_index import backfill_sql
    from tideflow.io.item_index import indexes_for
    from tideflow.io.schema import schema_of

    present = {
        r[0]
        for r in connection.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    for index in indexes_for(table, schema_of(ImageClassificationRow)):
        if index.name in present:
            connection.execute(backfill_sql(index))


def main() -> None:
    path, count = sys.argv[1], int(sys.argv[2])
    with duckdb.connect(path) as connection:
        fill(connection, count)


if __name__ == "__main__":
    main()
