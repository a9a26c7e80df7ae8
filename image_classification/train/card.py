"""The model card: what was trained on what, and how well it does on held-out images."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

MAX_MATRIX_CLASSES = 20


def render_card(card: dict[str, Any]) -> Group:
    """A readable view of ``card`` (the same numbers as card.json)."""
    metrics = card["metrics"]
    data = card["data"]
    split = data["split"]
    backbone = card["backbone"]
    training = card["training"]
    model = card["model"]
    lines = [
        Text.assemble(("Model card: ", "bold"), (card["name"], "bold cyan"), f"  ({card['task']})"),
        Text(
            f"backbone {card['backbone']['name']} (weights sha256 "
            f"{backbone['weights_sha256'][:16]}…, input {backbone['input_size']} px, "
            f"embedding {backbone['embedding_dim']})"
        ),
        Text(
            f"data {data['origin']}: {data['images']} images, {len(card['labels'])} labels; "
            f"split train {split['train']} / validation {split['validation']} / "
            f"test {split['test']} (seed {card['training']['seed']})"
            + (f"; skipped {len(data['skipped'])} unreadable" if data["skipped"] else "")
        ),
        Text(
            f"head trained {training['epochs']} epochs (best {training['best_epoch']}), "
            f"{training['augmented_views']} augmented view(s) per training image; "
            f"time: embed {card['time_s']['embed']:.1f} s, train {card['time_s']['train']:.1f} s, "
            f"export {card['time_s']['export']:.1f} s, total {card['time_s']['total']:.1f} s"
        ),
    ]
    evaluated = f"on the {metrics['split']} split ({metrics['images']} images)"
    if card["task"] == "single-label":
        lines.append(
            Text.assemble(
                ("accuracy ", "bold"),
                (f"{metrics['accuracy']:.1%}", "bold green"),
                f", macro F1 {metrics['macro_f1']:.3f} {evaluated}",
            )
        )
    else:
        lines.append(
            Text.assemble(
                ("micro F1 ", "bold"),
                (f"{metrics['micro_f1']:.3f}", "bold green"),
                f", macro F1 {metrics['macro_f1']:.3f}, exact match {metrics['exact_match']:.1%} "
                f"{evaluated}",
            )
        )
    table = Table(title=f"Per label ({metrics['split']} split)", title_justify="left")
    table.add_column("label")
    table.add_column("precision", justify="right")
    table.add_column("recall", justify="right")
    table.add_column("F1", justify="right")
    table.add_column("support", justify="right")
    table.add_column("train images", justify="right")
    if card["task"] == "multi-label":
        table.add_column("threshold", justify="right")
    for i, row in enumerate(metrics["per_class"]):
        cells = [
            row["label"],
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(row["support"]),
            str(data["train_counts"][row["label"]]),
        ]
        if card["task"] == "multi-label":
            cells.append(f"{card['thresholds'][i]:.2f}")
        table.add_row(*cells)
    parts: list[Any] = [*lines, table]
    matrix = metrics.get("confusion_matrix")
    if matrix is not None and len(matrix) <= MAX_MATRIX_CLASSES:
        confusion = Table(
            title="Confusion matrix (rows: true, columns: predicted)", title_justify="left"
        )
        confusion.add_column("")
        for label in card["labels"]:
            confusion.add_column(label[:8], justify="right")
        for i, (label, row) in enumerate(zip(card["labels"], matrix, strict=True)):
            confusion.add_row(
                label, *[f"[bold]{v}[/]" if i == j and v else str(v) for j, v in enumerate(row)]
            )
        parts.append(confusion)
    parts.append(
        Text(f"model {model['file']} sha256 {model['sha256'][:16]}…  model_id {model['model_id']}")
    )
    return Group(*parts)


def card_text(card: dict[str, Any]) -> str:
    """The card as plain text (what ``card.txt`` holds)."""
    console = Console(record=True, width=120, file=io.StringIO(), color_system=None)
    console.print(render_card(card))
    return console.export_text()
