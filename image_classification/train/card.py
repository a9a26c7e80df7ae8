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
    parts: list[Any] = [*_summary(card), _headline(card), _per_label_table(card)]
    confusion = _confusion_table(card)
    if confusion is not None:
        parts.append(confusion)
    model = card["model"]
    parts.append(
        Text(f"model {model['file']} sha256 {model['sha256'][:16]}…  model_id {model['model_id']}")
    )
    return Group(*parts)


def _summary(card: dict[str, Any]) -> list[Text]:
    """What was trained: the name, the backbone, the data and the training run."""
    backbone = card["backbone"]
    data = card["data"]
    split = data["split"]
    training = card["training"]
    time_s = card["time_s"]
    return [
        Text.assemble(("Model card: ", "bold"), (card["name"], "bold cyan"), f"  ({card['task']})"),
        Text(
            f"backbone {backbone['name']} (weights sha256 "
            f"{backbone['weights_sha256'][:16]}…, input {backbone['input_size']} px, "
            f"embedding {backbone['embedding_dim']})"
        ),
        Text(
            f"data {data['origin']}: {data['images']} images, {len(card['labels'])} labels; "
            f"split train {split['train']} / validation {split['validation']} / "
            f"test {split['test']} (seed {training['seed']})"
            + (f"; skipped {len(data['skipped'])} unreadable" if data["skipped"] else "")
        ),
        Text(
            f"head trained {training['epochs']} epochs (best {training['best_epoch']}), "
            f"{training['augmented_views']} augmented view(s) per training image; "
            f"time: embed {time_s['embed']:.1f} s, train {time_s['train']:.1f} s, "
            f"export {time_s['export']:.1f} s, total {time_s['total']:.1f} s"
        ),
    ]


def _headline(card: dict[str, Any]) -> Text:
    """How well it does on held-out images: accuracy, or micro F1 for multi-label."""
    metrics = card["metrics"]
    evaluated = f"on the {metrics['split']} split ({metrics['images']} images)"
    if card["task"] == "single-label":
        return Text.assemble(
            ("accuracy ", "bold"),
            (f"{metrics['accuracy']:.1%}", "bold green"),
            f", macro F1 {metrics['macro_f1']:.3f} {evaluated}",
        )
    return Text.assemble(
        ("micro F1 ", "bold"),
        (f"{metrics['micro_f1']:.3f}", "bold green"),
        f", macro F1 {metrics['macro_f1']:.3f}, exact match {metrics['exact_match']:.1%} "
        f"{evaluated}",
    )


def _per_label_table(card: dict[str, Any]) -> Table:
    metrics = card["metrics"]
    multi_label = card["task"] == "multi-label"
    table = Table(title=f"Per label ({metrics['split']} split)", title_justify="left")
    table.add_column("label")
    for column in ("precision", "recall", "F1", "support", "train images"):
        table.add_column(column, justify="right")
    if multi_label:
        table.add_column("threshold", justify="right")
    for i, row in enumerate(metrics["per_class"]):
        cells = [
            row["label"],
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(row["support"]),
            str(card["data"]["train_counts"][row["label"]]),
        ]
        if multi_label:
            cells.append(f"{card['thresholds'][i]:.2f}")
        table.add_row(*cells)
    return table


def _confusion_table(card: dict[str, Any]) -> Table | None:
    """The confusion matrix of a single-label model with few enough classes to read it."""
    matrix = card["metrics"].get("confusion_matrix")
    if matrix is None or len(matrix) > MAX_MATRIX_CLASSES:
        return None
    table = Table(title="Confusion matrix (rows: true, columns: predicted)", title_justify="left")
    table.add_column("")
    for label in card["labels"]:
        table.add_column(label[:8], justify="right")
    for i, (label, row) in enumerate(zip(card["labels"], matrix, strict=True)):
        table.add_row(
            label, *[f"[bold]{v}[/]" if i == j and v else str(v) for j, v in enumerate(row)]
        )
    return table


def card_text(card: dict[str, Any]) -> str:
    """The card as plain text (what ``card.txt`` holds)."""
    console = Console(record=True, width=120, file=io.StringIO(), color_system=None)
    console.print(render_card(card))
    return console.export_text()
