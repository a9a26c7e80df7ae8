"""Files made of thousands of tiny pieces (junk bytes, fill bytes, empty segments, chunks or
sub-blocks) are refused in milliseconds, before Pillow walks them in Python for seconds;
real images of every kind we accept still decode."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from image_classification.model import InvalidImageError, decode_image, probe_image

MB = 1024 * 1024
SIZE = 19 * MB  # just under the default 20 MB upload limit


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", marker, len(payload) + 2) + payload


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _repeat(head: bytes, piece: bytes, tail: bytes = b"") -> bytes:
    return head + piece * ((SIZE - len(head)) // len(piece)) + tail


_PNG_HEAD = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 10, 10, 8, 2, 0, 0, 0))
_PNG_PIXELS = _chunk(b"IDAT", zlib.compress(b"\0" * 310)) + _chunk(b"IEND", b"")
_GIF_HEAD = b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0, 0, 0)
_GIF_IMAGE = b"," + struct.pack("<HHHHB", 0, 0, 10, 10, 0) + b"\x02\x02\x4c\x01\x00;"
_SOF = bytes([8, 0, 10, 0, 10, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0])

# Each cost 1.5-8 s of CPU in Pillow 13 before it gave up or decoded a 10 x 10 image.
HOSTILE = {
    "jpeg-zeros": b"\xff\xd8\xff" + bytes(SIZE),
    "jpeg-fill": _repeat(b"\xff\xd8", b"\xff"),
    "jpeg-escaped": _repeat(b"\xff\xd8", b"\xff\x00"),
    "jpeg-restarts": _repeat(b"\xff\xd8", b"\xff\xd0"),
    "jpeg-empty-segments": _repeat(b"\xff\xd8", _segment(0xFFE5, b"")),
    "jpeg-exif-continued": _repeat(b"\xff\xd8", _segment(0xFFE1, b"Exif\0\0" + bytes(4980))),
    "jpeg-frames": _repeat(b"\xff\xd8", _segment(0xFFC0, _SOF + bytes(4980))),
    "jpeg-tables": _repeat(b"\xff\xd8", _segment(0xFFDB, (b"\0" + bytes(64)) * 1000)),
    "png-empty-chunks": _repeat(_PNG_HEAD, _chunk(b"abCd", b""), _PNG_PIXELS),
    "png-empty-idats": _repeat(_PNG_HEAD + _PNG_PIXELS[:-12], _chunk(b"IDAT", b"")),
    "gif-sub-blocks": _repeat(_GIF_HEAD + b"!\xfe", b"\x01a", b"\x00" + _GIF_IMAGE),
    "gif-extensions": _repeat(_GIF_HEAD, b"!\xf9\x04\x00\x00\x00\x00\x00", _GIF_IMAGE),
    "gif-junk": _GIF_HEAD + bytes(SIZE) + _GIF_IMAGE,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_file_of_tiny_pieces_is_refused_in_milliseconds(name: str) -> None:
    started = time.process_time()
    with pytest.raises(InvalidImageError, match="tiny pieces"):
        probe_image(HOSTILE[name])
    assert time.process_time() - started < 0.1


def _photo(size: tuple[int, int] = (640, 480)) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _saved(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated
    exif[0x010F] = "Camera maker"
    return exif.tobytes()


def _png_in_small_idats(image: Image.Image, idat_bytes: int) -> bytes:
    """``image`` as a PNG whose pixel data is split into IDAT chunks of ``idat_bytes``
    (libpng writes 8 KB ones; Pillow 64 KB)."""
    png = _saved(image, "PNG", compress_level=0)
    position, chunks, pixels = 8, [], b""
    while position < len(png):
        length = int.from_bytes(png[position : position + 4], "big")
        kind = png[position + 4 : position + 8]
        payload = png[position + 8 : position + 8 + length]
        if kind == b"IDAT":
            pixels += payload
        else:
            chunks.append((kind, payload))
        position += 12 + length
    idats = [_chunk(b"IDAT", pixels[i : i + idat_bytes]) for i in range(0, len(pixels), idat_bytes)]
    head = b"".join(_chunk(kind, payload) for kind, payload in chunks[:-1])  # up to IEND
    return png[:8] + head + b"".join(idats) + _chunk(b"IEND", b"")


def _frames(count: int) -> list[Image.Image]:
    return [_photo((80, 60)).rotate(i) for i in range(count)]


REAL = {
    "jpeg": lambda: _saved(_photo(), "JPEG"),
    "jpeg-progressive": lambda: _saved(_photo(), "JPEG", progressive=True, optimize=True),
    "jpeg-exif": lambda: _saved(_photo(), "JPEG", exif=_exif()),
    # A 2 MB ICC profile takes 33 APP2 segments.
    "jpeg-big-icc": lambda: _saved(_photo(), "JPEG", icc_profile=bytes(2 * MB)),
    "jpeg-best": lambda: _saved(_photo(), "JPEG", quality=100, subsampling=0),
    "png": lambda: _saved(_photo(), "PNG"),
    # 12 MB in 12,000 chunks: a PNG may have one chunk per KB beyond the first 4,096.
    "png-1k-idats": lambda: _png_in_small_idats(_photo((2000, 2000)), 1024),
    "apng": lambda: _saved(_frames(1)[0], "PNG", save_all=True, append_images=_frames(50)),
    "gif": lambda: _saved(_photo(), "GIF", comment=b"made by a test " * 20),
    "gif-animated": lambda: _saved(
        _frames(1)[0], "GIF", save_all=True, append_images=_frames(100), loop=0
    ),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_images_still_decode(name: str) -> None:
    decoded = decode_image(REAL[name]())
    assert decoded.pixels.shape == (3, 224, 224)
