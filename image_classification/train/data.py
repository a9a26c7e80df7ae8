"""Training data: a folder with one sub-folder per class, or a CSV ``path,labels`` (multi-label).

Reading checks everything before any work is done, with messages that say what to fix: an
empty class folder, a single class, CSV rows naming missing files or files outside the
CSV's folder (a CSV from elsewhere must not make the trainer read, say, ``/etc`` or ``~``:
``allow_outside`` / ``--allow-outside`` lifts that). Images that cannot be decoded, and
files over ``MAX_IMAGE_BYTES`` (checked before they are read), are skipped and listed
(``Dataset.skipped``), not fatal, unless a class is left empty.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from image_classification.model import InvalidImageError, probe_image

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
LABEL_SEPARATOR = "|"
MIN_IMAGES_PER_CLASS = 3  # one each for training, validation and test
MAX_IMAGE_BYTES = 64 * 1024 * 1024  # far above any photo; a file is read whole to be checked
TOO_LARGE = f"larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB, the limit for a training image"


class DataError(ValueError):
    """The training data cannot be used as given; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Example:
    """One training image: where it came from, its bytes' sha256 and its label indices."""

    source: str  # a path, or "bucket:<key>" for corrections
    sha256: str
    targets: tuple[int, ...]
    # Reads the bytes again when they must be decoded (not kept: a photo set may be large).
    load: Callable[[], bytes] = field(repr=False, compare=False)


@dataclass
class Dataset:
    labels: list[str]
    examples: list[Example]
    multi_label: bool
    origin: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)

    def counts(self) -> dict[str, int]:
        """Images per label."""
        counter: Counter[int] = Counter(t for example in self.examples for t in example.targets)
        return {label: counter[i] for i, label in enumerate(self.labels)}

    def subset(self, indices: list[int]) -> Dataset:
        """The examples at ``indices`` (nothing skipped, not checked: a split's part)."""
        examples = [self.examples[i] for i in indices]
        return Dataset(self.labels, examples, self.multi_label, self.origin)

    def without(self, failed: dict[str, str]) -> Dataset:
        """Without the examples from the ``failed`` sources, checked again (each label still
        needs enough images)."""
        kept = [e for e in self.examples if e.source not in failed]
        result = Dataset(self.labels, kept, self.multi_label, self.origin, [*self.skipped])
        _check(result)
        return result


def load_dataset(path: Path, *, allow_outside: bool = False) -> Dataset:
    """A folder of class folders (single-label) or a ``.csv`` file (multi-label); a CSV
    may name files outside its folder only with ``allow_outside``."""
    path = path.expanduser()
    if not path.exists():
        raise DataError(
            f"{path} does not exist: give a folder with one sub-folder per class, "
            "or a CSV file with the columns path,labels."
        )
    if path.is_dir():
        return _load_folders(path)
    if path.suffix.lower() == ".csv":
        return _load_csv(path, allow_outside=allow_outside)
    raise DataError(f"{path} is neither a folder nor a .csv file.")


def build_dataset(
    items: list[tuple[str, bytes, list[str]]], *, multi_label: bool, origin: str
) -> Dataset:
    """A dataset from ``(source, image bytes, label names)``; used for corrections."""
    names = sorted({label for _, _, labels in items for label in labels})
    index = {name: i for i, name in enumerate(names)}
    skipped: list[tuple[str, str]] = []
    examples = []
    for source, data, labels in items:
        problem = _unreadable(data)
        if problem:
            skipped.append((source, problem))
            continue
        targets = tuple(sorted({index[label] for label in labels}))
        examples.append(Example(source, _sha256(data), targets, partial(bytes, data)))
    dataset = Dataset(names, examples, multi_label, origin, skipped)
    _check(dataset)
    return dataset


def _load_folders(root: Path) -> Dataset:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(
            f"{root} has no class folders. Put each class's images in a sub-folder named after "
            "the class (e.g. {root}/cat/1.jpg, {root}/dog/2.jpg)."
        )
    labels = [folder.name for folder in folders]
    examples: list[Example] = []
    skipped: list[tuple[str, str]] = []
    empty = []
    for index, folder in enumerate(folders):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        skipped.extend((str(p), "not an image file name") for p in files if p not in images)
        if not images:
            empty.append(folder.name)
            continue
        for file in images:
            example = _example(file, (index,), skipped)
            if example is not None:
                examples.append(example)
    if empty:
        raise DataError(
            f"class folder(s) with no images: {', '.join(empty)} (in {root}). Add images "
            f"({', '.join(sorted(IMAGE_SUFFIXES))}) or remove the folder."
        )
    dataset = Dataset(labels, examples, False, str(root), skipped)
    _check(dataset)
    return dataset


def _load_csv(path: Path, *, allow_outside: bool) -> Dataset:
    base = path.parent
    folder = base.resolve()
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {path} as a UTF-8 CSV file: {exc}") from exc
    start = 1 if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "labels"] else 0
    entries: list[tuple[int, Path, list[str]]] = []
    problems: list[str] = []
    for line, row in enumerate(rows[start:], start=start + 1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) > 2:
            problems.append(f"line {line}: {len(row)} columns, expected 2 (path,labels)")
            continue
        file = (base / row[0].strip()).expanduser()
        labels = [p.strip() for p in (row[1] if len(row) > 1 else "").split(LABEL_SEPARATOR)]
        labels = [label for label in labels if label]
        if not row[0].strip():
            problems.append(f"line {line}: empty path")
        elif not allow_outside and not file.resolve().is_relative_to(folder):
            problems.append(
                f"line {line}: {row[0].strip()} is outside the CSV's folder {folder} (pass "
                "--allow-outside to read files anywhere)"
            )
        elif not file.is_file():
            problems.append(f"line {line}: no such file {file}")
        else:
            entries.append((line, file, labels))
    if problems:
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise DataError(f"{path}: {shown}{more}. Paths are relative to the CSV's folder.")
    if not entries:
        raise DataError(
            f"{path} lists no images. Write one row per image: path,labels with the labels "
            f"separated by '{LABEL_SEPARATOR}' (e.g. photos/1.jpg,cat|dog)."
        )
    names = sorted({label for _, _, labels in entries for label in labels})
    index = {name: i for i, name in enumerate(names)}
    examples = []
    skipped: list[tuple[str, str]] = []
    for _, file, labels in entries:
        example = _example(file, tuple(index[n] for n in labels), skipped)
        if example is not None:
            examples.append(example)
    dataset = Dataset(names, examples, True, str(path), skipped)
    _check(dataset)
    return dataset


def _example(
    file: Path, targets: tuple[int, ...], skipped: list[tuple[str, str]]
) -> Example | None:
    """``file`` as an example, or None after adding why not to ``skipped``."""
    if file.stat().st_size > MAX_IMAGE_BYTES:
        skipped.append((str(file), TOO_LARGE))
        return None
    data = file.read_bytes()
    problem = _unreadable(data)
    if problem:
        skipped.append((str(file), problem))
        return None
    return Example(str(file), _sha256(data), targets, file.read_bytes)


def _check(dataset: Dataset) -> None:
    if len(dataset.labels) < 2:
        found = f"only {dataset.labels[0]!r}" if dataset.labels else "none"
        raise DataError(
            f"a model needs at least two classes (labels); {dataset.origin} has {found}."
        )
    counts = dataset.counts()
    few = [f"{label} ({n})" for label, n in counts.items() if n < MIN_IMAGES_PER_CLASS]
    if few:
        after = " after skipping unreadable images" if dataset.skipped else ""
        raise DataError(
            f"each label needs at least {MIN_IMAGES_PER_CLASS} readable images (for training, "
            f"validation and test){after}; too few: {', '.join(few)}."
        )


def _unreadable(data: bytes) -> str | None:
    try:
        probe_image(data)
    except InvalidImageError as exc:
        return str(exc)
    return None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
