"""``--from-corrections``: the corrections people made on the results page as training data.

Run from the project folder (it reads ``buildflow.yaml`` and ``.env`` like ``tideflow``):
the newest correction of each image gives its labels, and the image itself is read from the
bucket (the exact version that was corrected). With one label per image the model is
single-label, otherwise multi-label (an empty correction means "none of these"). The
table is read through ``tideflow.open_project``: through the running app while ``tideflow
run`` holds the warehouse, directly otherwise.
"""

from __future__ import annotations

from rich.console import Console

from .data import MAX_IMAGE_BYTES, TOO_LARGE, DataError, Dataset, build_dataset


def load_corrections_dataset(console: Console) -> Dataset:
    from tideflow import open_project
    from tideflow.exceptions import TideflowError

    try:
        project = open_project()  # loads .env and picks the stack, as `tideflow` does
        # Imported after: the app reads the settings the project's .env gives.
        from image_classification.image_ids import parse_image_id
        from image_classification.primitives import build_primitives
        from image_classification.processors.corrections import newest_sql
        from image_classification.schemas import CorrectionRow
        from image_classification.settings import get_settings

        primitives = build_primitives(get_settings())
        table_name = primitives.corrections.table_name
        found = project.table(name=table_name).query(newest_sql())
    except TideflowError as exc:
        raise DataError(f"cannot read the corrections table: {exc}") from exc
    rows = [CorrectionRow(*values) for values in found.rows]
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
        f"{len(rows)} corrected image(s) in {table_name}; "
        f"{len(items)} read from bucket {objects.bucket_name}",
        highlight=False,
    )
    multi_label = any(len(labels) != 1 for _, _, labels in items)
    dataset = build_dataset(items, multi_label=multi_label, origin="corrections")
    dataset.skipped[:0] = missing
    return dataset
