"""Offline training data from scikit-learn's digits (1,797 8x8 images of 0-9).

    python scripts/make_digits.py folders DIR [--per-class N]   # DIR/<digit>/<n>.jpg
    python scripts/make_digits.py pairs DIR [--count N]         # DIR/labels.csv + images of two
                                                                # different digits side by side

Each digit is drawn dark on white, upscaled to 48 px and centered on a 64 px canvas, saved
as JPEG. Used by the training tests and the README's "Your own classes" demo.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

import numpy as np
from PIL import Image


def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images, data.target


def render(image8: np.ndarray) -> Image.Image:
    gray = (255 - image8 * (255 / 16)).clip(0, 255).astype(np.uint8)
    digit = Image.fromarray(gray).resize((48, 48), Image.Resampling.BILINEAR)
    canvas = Image.new("L", (64, 64), 255)
    canvas.paste(digit, (8, 8))
    return canvas.convert("RGB")


def write_folders(out: Path, per_class: int | None = None) -> int:
    """``out/<digit>/<n>.jpg``, the first ``per_class`` images of each digit (all if None)."""
    images, targets = digits()
    counts: dict[int, int] = {}
    for image, target in zip(images, targets, strict=True):
        t = int(target)
        if per_class is not None and counts.get(t, 0) >= per_class:
            continue
        counts[t] = counts.get(t, 0) + 1
        folder = out / str(t)
        folder.mkdir(parents=True, exist_ok=True)
        render(image).save(folder / f"{counts[t]}.jpg", quality=90)
    return sum(counts.values())


def write_pairs(out: Path, count: int, *, seed: int = 0) -> Path:
    """``count`` images of two different digits side by side, and ``out/labels.csv``."""
    images, targets = digits()
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "labels.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "labels"])
        for n in range(count):
            while True:
                a, b = rng.randrange(len(images)), rng.randrange(len(images))
                if targets[a] != targets[b]:
                    break
            # Square, so that the model's center crop keeps both digits.
            canvas = Image.new("RGB", (128, 128), "white")
            canvas.paste(render(images[a]), (0, 32))
            canvas.paste(render(images[b]), (64, 32))
            name = f"pair{n:04d}.jpg"
            canvas.save(out / name, quality=90)
            writer.writerow([name, f"{targets[a]}|{targets[b]}"])
    return csv_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="kind", required=True)
    folders = sub.add_parser("folders")
    folders.add_argument("out", type=Path)
    folders.add_argument("--per-class", type=int)
    pairs = sub.add_parser("pairs")
    pairs.add_argument("out", type=Path)
    pairs.add_argument("--count", type=int, default=600)
    args = parser.parse_args()
    if args.kind == "folders":
        print(f"{write_folders(args.out, args.per_class)} images in {args.out}")
    else:
        print(write_pairs(args.out, args.count))


if __name__ == "__main__":
    main()
