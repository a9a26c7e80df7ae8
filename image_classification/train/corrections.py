"""``--from-corrections``: the corrections people made on the results page as training data.

Run from the project folder (it reads ``buildflow.yaml`` and ``.env`` like ``tideflow``):
the newest correction of each image gives its labels, and the image itself is read from the
bucket (the exact version that was corrected). With one label per image the model is
single-label, otherwise multi-label (an empty correction means "none of these"). While
``tideflow run`` holds the local DuckDB file, the corrections are read through it.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from rich.console import Console

from .data import MAX_IMAGE_BYTES, TOO_LARGE, DataError, Dataset, build_dataset


def load_corrections_dataset(console: Console) -> Dataset:
    from tideflow.cli.main import Context
    from tideflow.exceptions import TideflowError

    try:
        ctx = Context(None)  # loads .env, picks the stack, imports the app (main.py)
    except TideflowError as exc:
        raise DataError(f"cannot open the app's project here: {exc}") from exc
    from image_classification.image_ids import parse_image_id
    from image_classification.primitives import build_primitives
    from image_classification.processors import corrections
    from image_classification.settings import get_settings

    primitives = build_primitives(get_settings())
    table = corrections.Corrections(primitives.corrections)
    rows = _read_corrections(ctx, table)
    if not rows:
        raise DataError(
            "there are no corrections yet: mark labels wrong on the results page first "
            "(or POST /api/images/{image_id}/corrections)."
        )
    objects = primitives.bucket.objects()
    items: list[tuple[str, bytes, list[str]]] = []
    missing: list[tuple[str, str]] = []
    for row in rows:
        key, version = parse_image_id(row.image_id)
        source = f"bucket:{key}#{version}"
        try:
            stored = objects.stat(key)
            if stored is not None and stored.size > MAX_IMAGE_BYTES:
                missing.append((source, TOO_LARGE))
                continue
            data = objects.get(key, version=version)
        except Exception as exc:  # ObjectNotFoundError, or a provider's own error
            missing.append((source, f"cannot read it from the bucket: {exc}"))
            continue
        items.append((source, data, list(row.labels)))
    console.print(
        f"{len(rows)} corrected image(s) in {primitives.corrections.table_name}; "
        f"{len(items)} read from bucket {objects.bucket_name}",
        highlight=False,
    )
    multi_label = any(len(labels) != 1 for _, _, labels in items)
    dataset = build_dataset(items, multi_label=multi_label, origin="corrections")
    dataset.skipped[:0] = missing
    return dataset


def _read_corrections(ctx: Any, table: Any) -> list[Any]:
    try:
        return list(table.all_latest())
    except Exception as exc:
        sock = ctx.admin_socket()
        if sock is None:
            raise DataError(f"cannot read the corrections table: {exc}") from exc
    from image_classification.processors.corrections import newest_sql
    from image_classification.schemas import CorrectionRow
    from tideflow.io.strategies import MAX_QUERY_ROWS

    # `tideflow run` holds the DuckDB file: ask it (its admin socket runs SQL read-only).
    sql = newest_sql(table_ref=f'"{table.table.table_name}"')
    answer = _ask(sock, {"sql": sql, "max_rows": MAX_QUERY_ROWS})
    if answer.get("truncated"):
        raise DataError(
            f"more than {MAX_QUERY_ROWS:,} corrected images, more than the running app hands "
            "out: stop `tideflow run` and train again (the trainer then reads the table itself)"
        )
    result = []
    for values in answer["rows"]:
        row = dict(zip(answer["columns"], values, strict=True))
        if isinstance(row["labels"], str):
            row["labels"] = json.loads(row["labels"])
        if isinstance(row["corrected_at"], str):
            row["corrected_at"] = datetime.datetime.fromisoformat(row["corrected_at"])
        result.append(CorrectionRow(**row))
    return result


def _ask(sock: Any, payload: dict[str, Any]) -> dict[str, Any]:
    import httpx

    transport = httpx.HTTPTransport(uds=str(sock))
    with httpx.Client(transport=transport, base_url="http://tideflow", timeout=60) as client:
        response = client.post("/query", json=payload)
    if response.status_code != 200:
        raise DataError(f"the running app could not read the corrections: {response.text}")
    answer: dict[str, Any] = response.json()
    return answer
