"""Command line: ``python -m image_classification.model {download,export,list,classify}``.

* ``download mobilenet_v2 [--dest DIR]``: fetch the tutorial's weights file, sha256-verified.
* ``export efficientnet_lite0``: build the ONNX cache now (e.g. in an image build), so replicas
  start without importing torch.
* ``list``: known models and where their weights were found.
* ``classify photo.jpg ...``: print the top-k labels.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from .errors import ModelError
from .registry import DEFAULT_ENGINE, DEFAULT_MODEL, ENGINES, MODELS, get_spec


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m image_classification.model", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)

    download = commands.add_parser("download", help="download a model's official weights file")
    download.add_argument("model", choices=[name for name, s in MODELS.items() if s.download_url])
    download.add_argument("--dest", type=Path, help="folder (default: $MODEL_PATH or repo root)")
    download.add_argument("--base-url", help="mirror to download from (default: torchvision's)")
    download.add_argument("--timeout", type=float, default=60.0, help="seconds per read")

    export = commands.add_parser("export", help="export a model to the ONNX cache")
    export.add_argument("model", nargs="?", default=DEFAULT_MODEL)
    export.add_argument("--weights-path", type=Path)
    export.add_argument("--cache-dir", type=Path)

    commands.add_parser("list", help="list models and whether their weights are present")

    classify = commands.add_parser("classify", help="classify image files")
    classify.add_argument("images", nargs="+", type=Path)
    classify.add_argument("--model", default=DEFAULT_MODEL)
    classify.add_argument("--engine", default=DEFAULT_ENGINE, choices=ENGINES)
    classify.add_argument("--weights-path", type=Path)
    classify.add_argument("--threads", type=int)
    classify.add_argument("--top-k", type=int, default=5)

    for command in (download, export, classify):
        command.add_argument(
            "--quiet", "-q", action="store_true", help="no progress bar or spinner"
        )

    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _progress(args: argparse.Namespace, *columns: Any) -> Progress:
    """A Rich progress display on stderr, off with --quiet or when stderr is no terminal."""
    console = Console(stderr=True)
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        *columns,
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=args.quiet or not console.is_terminal,
    )


def _download(args: argparse.Namespace) -> int:
    from .download import download_weights

    with _progress(args, BarColumn(), DownloadColumn(), TransferSpeedColumn()) as progress:
        task = progress.add_task(f"Downloading {args.model}", total=None)

        def advance(received: int, total: int | None) -> None:
            progress.update(task, completed=received, total=total)

        path = download_weights(
            args.model,
            dest_dir=args.dest,
            base_url=args.base_url,
            timeout=args.timeout,
            progress=advance,
        )
    print(f"{args.model}: {path} (sha256 verified)")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .engines.onnx import default_cache_dir, ensure_onnx
    from .weights import resolve_weights, sha256_file

    spec = get_spec(args.model)
    weights = resolve_weights(spec, args.weights_path)
    cache_dir = args.cache_dir or default_cache_dir()
    with _progress(args) as progress:
        progress.add_task(f"Exporting {args.model} to ONNX", total=None)
        path = ensure_onnx(spec, weights, sha256_file(weights), cache_dir)
    print(path)
    return 0


def _list(args: argparse.Namespace) -> int:
    from .weights import resolve_weights

    for name, spec in MODELS.items():
        try:
            where = str(resolve_weights(spec, None))
        except ModelError:
            where = f"missing: python -m image_classification.model download {name}"
        engines = "onnxruntime, torch" + (", imageai" if spec.imageai_setter else "")
        print(f"{name:20} {spec.preprocess.crop}px  engines: {engines:30} weights: {where}")
    return 0


def _classify(args: argparse.Namespace) -> int:
    from .loader import load_classifier

    with _progress(args) as progress:
        progress.add_task(f"Loading {args.model} ({args.engine})", total=None)
        classifier = load_classifier(
            args.model, args.engine, weights_path=args.weights_path, threads=args.threads
        )
    print(classifier.model_id)
    status = 0
    for path in args.images:
        try:
            result = classifier.classify_with_info(path.read_bytes(), top_k=args.top_k)
        except (ModelError, OSError) as exc:
            print(f"{path}: error: {exc}")
            status = 1
            continue
        labels = ", ".join(f"{c.label} {c.confidence:.3f}" for c in result.classifications)
        print(f"{path} ({result.format} {result.width}x{result.height}): {labels}")
    return status


_COMMANDS = {"download": _download, "export": _export, "list": _list, "classify": _classify}

if __name__ == "__main__":
    sys.exit(main())
