"""Hypothesis on image decoding and preprocessing: any bytes give pixels or an
``InvalidImageError`` with a message, never another exception, a hang or a huge allocation.

Seeded and short in ``make test`` (derandomized); ``make fuzz`` (FUZZ_LONG=1) runs many
more examples with fresh randomness.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from image_classification.model import InvalidImageError, decode_image, decoded_size, probe_image
from image_classification.processors.thumbnails import make_thumbnail
from image_classification.processors.uploads import sniff_image_type

pytestmark = pytest.mark.fuzz

LONG = os.environ.get("FUZZ_LONG") == "1"
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES") or (5000 if LONG else 300)),
    derandomize=not LONG,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# What the decoder may allocate for one input: far below a bomb, above any seed here.
SMALL_LIMIT = 4_000_000


def _seed(fmt: str, mode: str, size: tuple[int, int], **options: object) -> bytes:
    rng = np.random.default_rng(len(fmt) + size[0])
    channels = len(Image.new(mode, (1, 1)).getbands())
    shape = (size[1], size[0], channels) if channels > 1 else (size[1], size[0])
    array = rng.integers(0, 255, shape, dtype=np.uint8)
    image = Image.fromarray(array).convert(mode)
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


SEEDS = [
    _seed("PNG", "RGB", (40, 30)),
    _seed("PNG", "LA", (17, 23)),
    _seed("PNG", "P", (31, 9)),
    _seed("JPEG", "RGB", (64, 48), quality=70),
    _seed("JPEG", "L", (33, 33), progressive=True),
    _seed("GIF", "P", (20, 20)),
    _seed("BMP", "RGB", (13, 7)),
    _seed("TIFF", "RGB", (16, 12), compression="tiff_lzw"),
    _seed("WEBP", "RGBA", (25, 25), quality=60),
]


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A real small image with bytes flipped, cut, inserted or header fields rewritten."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "big-int"]))
        position = draw(st.integers(0, len(data) - 1))
        if action == "flip":
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "cut":
            del data[position:]
            if not data:
                break
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=32))
        else:  # a width/height-like field: huge or zero
            value = draw(st.sampled_from([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]))
            data[position : position + 4] = value.to_bytes(4, "big")
    return bytes(data)


MAGIC = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM\0\0\0\0\0\0\0\0", b"II*\0"]
any_input = st.one_of(
    mutated_images(),
    st.builds(lambda m, rest: m + rest, st.sampled_from(MAGIC), st.binary(max_size=512)),
    st.binary(max_size=256),
)


@FUZZ
@given(any_input)
def test_decoding_gives_pixels_or_a_reason(data: bytes) -> None:
    try:
        decoded = decode_image(data, max_pixels=SMALL_LIMIT)
    except InvalidImageError as exc:
        assert str(exc)
        return
    assert decoded.pixels.shape == (3, 224, 224)
    assert decoded.pixels.dtype == np.float32
    assert np.isfinite(decoded.pixels).all()
    assert decoded.width * decoded.height <= SMALL_LIMIT


@FUZZ
@given(any_input)
def test_header_checks_and_thumbnails_never_crash(data: bytes) -> None:
    sniff_image_type(data[:16])
    for check in (
        lambda: probe_image(data, max_pixels=SMALL_LIMIT),
        lambda: decoded_size(data, min_size=256, max_pixels=SMALL_LIMIT),
        lambda: make_thumbnail(data),
    ):
        try:
            check()
        except InvalidImageError as exc:
            assert str(exc)


def test_the_seeds_themselves_decode() -> None:
    for data in SEEDS:
        assert decode_image(data).pixels.shape == (3, 224, 224)
