"""Bounds on ``POST /classify``, which decodes images in the HTTP server's own process.

That process also owns the event journal and the DuckDB writer, so an out-of-memory kill
there stops everything. A 260 KB all-zero PNG can declare 9,400 x 9,500 pixels (~270 MB
decoded) and still pass Pillow's 89 MP bomb limit. So ``/classify``:

* decodes JPEGs at reduced scale (libjpeg's DCT scaling), never below the model's size;
* refuses with 413 an image whose decoded size is over ``CLASSIFY_MAX_PIXELS`` (12 MP by
  default), judged from its header before any pixel is decoded;
* runs at most ``CLASSIFY_CONCURRENCY`` (2 by default) decodes at once; a request beyond
  that gets 503 with ``Retry-After`` at once instead of queueing with its file.

Thumbnails, the run process's other decoder, share the slots and the pixel budget (they
wait up to 10 s for a slot; an image over the budget has no preview).

Peak memory for decoding is then at most about CLASSIFY_CONCURRENCY x CLASSIFY_MAX_PIXELS
x 9 bytes (measured for the costliest modes, RGBA and gray + alpha, which Pillow keeps in 4
bytes a pixel and composites on white): ~220 MB with the defaults.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Annotated

from fastapi import HTTPException

from image_classification.dependencies import SettingsDep
from image_classification.model import decoded_size
from tideflow import Scope, dependency

RETRY_AFTER_SECONDS = 1


class ClassifySlots:
    """At most ``limit`` classifications at once; ``take()`` raises 503 when all are busy."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    @contextlib.contextmanager
    def take(self, *, wait: float = 0.0) -> Iterator[None]:
        """Hold a slot; 503 if none is free within ``wait`` seconds (at once by default)."""
        taken = self._slots.acquire(timeout=wait) if wait > 0 else self._slots.acquire(False)
        if not taken:
            raise HTTPException(
                503,
                f"The server is decoding {self.limit} image(s) already; "
                f"try again in {RETRY_AFTER_SECONDS} s (or upload to /image-upload).",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        try:
            yield
        finally:
            self._slots.release()


@dependency(scope=Scope.REPLICA)
def classify_slots(settings: SettingsDep) -> ClassifySlots:
    """The HTTP service's decode slots, shared by /classify and thumbnails."""
    return ClassifySlots(settings.classify_concurrency)


Slots = Annotated[ClassifySlots, classify_slots]


def check_pixel_budget(data: bytes, *, min_size: int, max_pixels: int) -> None:
    """413 when decoding ``data`` (at reduced scale down to ``min_size``) would produce more
    than ``max_pixels`` pixels. Invalid images pass here: the classifier explains them."""
    try:
        width, height = decoded_size(data, min_size=min_size)
    except Exception:  # the classifier's decoder reports these, with a reason
        return
    if width * height > max_pixels:
        raise HTTPException(
            413,
            f"The image is too large to classify here ({width} x {height} = "
            f"{width * height:,} pixels to decode; /classify takes at most {max_pixels:,}, "
            "CLASSIFY_MAX_PIXELS). Upload it to /image-upload, or resize it.",
        )
