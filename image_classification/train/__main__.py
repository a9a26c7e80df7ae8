"""``python -m image_classification.train DATA --out models/NAME``: train your own classes
(``--help`` says how)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from image_classification.model import ModelError
from image_classification.model.cli import QuietOption, command_line, fail, run, stderr
from image_classification.model.registry import DEFAULT_MODEL, ModelName
from tideflow.extras import missing_extra

from .data import DataError
from .head import HeadOptions

if TYPE_CHECKING:
    from .data import Dataset
    from .trainer import TrainOptions

PROG = "python -m image_classification.train"

app = command_line("Train your own classes.")


def _fraction(value: float) -> float:
    """A share of the images held out: at least 0 and below one half."""
    if not 0 <= value < 0.5:
        raise typer.BadParameter("must be at least 0 and below 0.5")
    return value


@app.command()
def train_model(
    out: Annotated[
        Path, typer.Option(help="Folder for the model (models/NAME).", show_default=False)
    ],
    data: Annotated[
        Path | None,
        typer.Argument(help="Class folders, or a path,labels CSV.", show_default=False),
    ] = None,
    from_corrections: Annotated[
        bool,
        typer.Option(
            "--from-corrections",
            help="Train on the corrections people made on the results page (images from the "
            "bucket).",
        ),
    ] = False,
    backbone: Annotated[
        ModelName, typer.Option(help="Frozen pretrained model that embeds the images.")
    ] = ModelName(DEFAULT_MODEL),
    weights_path: Annotated[
        Path | None, typer.Option(help="The backbone's weights file or folder.")
    ] = None,
    image_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Backbone input size in pixels (default: its own, 224); smaller embeds faster "
            "(112: ~4x), for small simple images.",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="The model's name in model_id (default: the --out folder's name)."),
    ] = None,
    val: Annotated[float, typer.Option(callback=_fraction, help="Validation fraction.")] = 0.15,
    test: Annotated[
        float, typer.Option(callback=_fraction, help="Test (holdout) fraction.")
    ] = 0.15,
    seed: Annotated[int, typer.Option(help="Split and training seed.")] = 0,
    augment: Annotated[
        int, typer.Option(min=0, help="Augmented views per training image (0: none).")
    ] = 1,
    epochs: Annotated[int, typer.Option(min=1, help="Train at most this many epochs.")] = 200,
    patience: Annotated[
        int,
        typer.Option(min=1, help="Stop after this many epochs without a better validation loss."),
    ] = 15,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 3e-3,
    batch_size: Annotated[int, typer.Option(min=1, help="Embeddings per step.")] = 128,
    hidden: Annotated[
        int, typer.Option(min=0, help="Units in a hidden layer (0: a linear head).")
    ] = 0,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads (default: all).", show_default=False)
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(
            help="Embedding cache file (default: embeddings.sqlite in $TIDEFLOW_MODEL_CACHE, "
            "else in ~/.cache/tideflow/models)."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Replace the model in an existing --out folder (only a folder holding card.json).",
        ),
    ] = False,
    allow_outside: Annotated[
        bool,
        typer.Option(
            "--allow-outside",
            help="Let a CSV name files outside its own folder (absolute paths, ..).",
        ),
    ] = False,
    quiet: QuietOption = False,
) -> None:
    """Train a model on your own classes, on the CPU.

    DATA is a folder with one sub-folder per class (single-label), or a CSV file path,labels
    with the labels separated by | (multi-label; an image may have none).

    The model is written to --out as model.onnx (backbone + head: serve it with
    MODEL=models/NAME/model.onnx), model.txt (labels), model.json (preprocessing, thresholds)
    and card.json, card.txt (the model card).
    """
    if (data is None) == (not from_corrections):
        fail("give DATA (a folder or CSV file) or --from-corrections, not both")
    # The training steps import torch as they go: say what is missing before any work.
    if importlib.util.find_spec("torch") is None:
        fail(missing_extra("torch", "training", "torch"))
    from .trainer import TrainOptions

    options = TrainOptions(
        backbone=backbone.value,
        weights_path=weights_path,
        image_size=image_size,
        name=name,
        val_fraction=val,
        test_fraction=test,
        augment=augment,
        head=HeadOptions(
            epochs=epochs,
            patience=patience,
            learning_rate=lr,
            batch_size=batch_size,
            hidden=hidden,
            seed=seed,
        ),
        threads=threads,
        embedding_cache=cache,
        force=force,
    )
    try:
        card = _train(data, out, options, allow_outside=allow_outside, quiet=quiet)
    except KeyboardInterrupt:
        stderr.print("interrupted; nothing was written to --out")
        raise typer.Exit(130) from None
    _print_result(card, out)


def _train(
    data: Path | None, out: Path, options: TrainOptions, *, allow_outside: bool, quiet: bool
) -> dict[str, Any]:
    """Read the data (DATA, else the corrections), say what is skipped, train: the card."""
    from .model_files import check_out_dir
    from .trainer import train

    check_out_dir(out, force=options.force)
    dataset = _load(data, allow_outside=allow_outside)
    _print_skipped(dataset.skipped)
    card = train(dataset, out, options, console=stderr, quiet=quiet)
    # Images that failed to decode while embedding, beyond those the reading skipped.
    read_skipped = {source for source, _ in dataset.skipped}
    _print_skipped(
        [(s["file"], s["reason"]) for s in card["data"]["skipped"] if s["file"] not in read_skipped]
    )
    return card


def _load(data: Path | None, *, allow_outside: bool) -> Dataset:
    if data is None:
        from .corrections import load_corrections_dataset

        return load_corrections_dataset(stderr)
    from .data import load_dataset

    return load_dataset(data, allow_outside=allow_outside)


def _print_skipped(skipped: Sequence[tuple[str, str]]) -> None:
    for source, reason in skipped:
        # One line each, however long the path (a log or a pipe keeps it whole for grep).
        stderr.print(
            f"[yellow]skipped[/] {escape(f'{source}: {reason}')}", highlight=False, soft_wrap=True
        )


def _print_result(card: dict[str, Any], out: Path) -> None:
    from .card import render_card

    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(render_card(card))
    console.print(f"Saved to {out}/ ; serve it with MODEL={out / 'model.onnx'}", highlight=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: the process's arguments); its exit status."""
    return run(app, argv, prog_name=PROG, reported=(DataError, ModelError))


if __name__ == "__main__":
    sys.exit(main())
