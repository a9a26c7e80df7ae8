"""``python -m image_classification.train DATA --out models/NAME``: train your own classes.

DATA is a folder with one sub-folder per class (single-label), or a CSV file ``path,labels``
with the labels separated by ``|`` (multi-label; an image may have none). The model is
written to ``--out`` as ``model.onnx`` (backbone + head: serve it with
``MODEL=models/NAME/model.onnx``), ``model.txt`` (labels), ``model.json`` (preprocessing,
thresholds) and ``card.json``/``card.txt`` (the model card).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from image_classification.model import ModelError
from image_classification.model.registry import DEFAULT_MODEL, MODELS
from tideflow.extras import missing_extra

from .data import DataError
from .head import HeadOptions


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 0.5:
        raise argparse.ArgumentTypeError("must be at least 0 and below 0.5")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m image_classification.train",
        description=__doc__.split("\n\n")[0].split(": ", 1)[1] if __doc__ else None,
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", nargs="?", type=Path, help="class folders, or a path,labels CSV")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the model (models/NAME)"
    )
    parser.add_argument(
        "--from-corrections",
        action="store_true",
        help="train on the corrections people made on the results page (images from the bucket)",
    )
    parser.add_argument(
        "--backbone",
        default=DEFAULT_MODEL,
        choices=sorted(MODELS),
        help=f"frozen pretrained model that embeds the images (default {DEFAULT_MODEL})",
    )
    parser.add_argument("--weights-path", type=Path, help="the backbone's weights file or folder")
    parser.add_argument(
        "--image-size",
        type=_positive,
        help="backbone input size in pixels (default: its own, 224); smaller "
        "embeds faster (112: ~4x), for small simple images",
    )
    parser.add_argument(
        "--name", help="the model's name in model_id (default: the --out folder's name)"
    )
    parser.add_argument("--val", type=_fraction, default=0.15, help="validation fraction (0.15)")
    parser.add_argument(
        "--test", type=_fraction, default=0.15, help="test (holdout) fraction (0.15)"
    )
    parser.add_argument("--seed", type=int, default=0, help="split and training seed (0)")
    parser.add_argument(
        "--augment",
        type=_non_negative,
        default=1,
        help="augmented views per training image (1; 0 turns it off)",
    )
    parser.add_argument("--epochs", type=_positive, default=200, help="at most this many (200)")
    parser.add_argument(
        "--patience",
        type=_positive,
        default=15,
        help="stop after this many epochs without a better validation loss (15)",
    )
    parser.add_argument("--lr", type=float, default=3e-3, help="learning rate (0.003)")
    parser.add_argument("--batch-size", type=_positive, default=128)
    parser.add_argument(
        "--hidden", type=_non_negative, default=0, help="units in a hidden layer (0: a linear head)"
    )
    parser.add_argument("--threads", type=_positive, help="CPU threads (default: all)")
    parser.add_argument(
        "--cache",
        type=Path,
        help="embedding cache file (default ~/.cache/tideflow/models/embeddings.sqlite)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace the model in an existing --out folder (only a folder holding card.json)",
    )
    parser.add_argument(
        "--allow-outside",
        action="store_true",
        help="let a CSV name files outside its own folder (absolute paths, ..)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.data is None) == (not args.from_corrections):
        parser.error("give DATA (a folder or CSV file) or --from-corrections, not both")
    from .trainer import TrainOptions, check_out_dir, print_card, train

    out_console = Console(width=None if sys.stdout.isatty() else 120)
    err_console = Console(stderr=True)
    # The training steps import torch as they go: say what is missing before any work.
    if importlib.util.find_spec("torch") is None:
        message = escape(missing_extra("torch", "training", "torch"))
        err_console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
        return 2
    options = TrainOptions(
        backbone=args.backbone,
        weights_path=args.weights_path,
        image_size=args.image_size,
        name=args.name,
        val_fraction=args.val,
        test_fraction=args.test,
        augment=args.augment,
        head=HeadOptions(
            epochs=args.epochs,
            patience=args.patience,
            learning_rate=args.lr,
            batch_size=args.batch_size,
            hidden=args.hidden,
            seed=args.seed,
        ),
        threads=args.threads,
        embedding_cache=args.cache,
        force=args.force,
    )
    try:
        check_out_dir(args.out, force=args.force)
        if args.from_corrections:
            from .corrections import load_corrections_dataset

            dataset = load_corrections_dataset(err_console)
        else:
            from .data import load_dataset

            dataset = load_dataset(args.data, allow_outside=args.allow_outside)
        for source, reason in dataset.skipped:
            err_console.print(f"[yellow]skipped[/] {source}: {reason}", highlight=False)
        card = train(dataset, args.out, options, console=err_console)
    except (DataError, ModelError) as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted; nothing was written to --out")
        return 130
    for item in card["data"]["skipped"]:
        if item["file"] not in {s for s, _ in dataset.skipped}:
            err_console.print(
                f"[yellow]skipped[/] {item['file']}: {item['reason']}", highlight=False
            )
    print_card(card, out_console)
    out_console.print(
        f"Saved to {args.out}/ ; serve it with MODEL={args.out / 'model.onnx'}", highlight=False
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
