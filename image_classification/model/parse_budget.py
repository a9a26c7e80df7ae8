"""A bound on the work Pillow's parsers do in Python, checked cheaply in bytes first.

Pillow reads the structure of JPEG (marker segments), PNG (chunks) and GIF (blocks) files in
Python, one small piece at a time; only the pixels are decoded in C. So a 19 MB file made of
tiny pieces costs seconds of CPU before Pillow gives up or decodes a 10 x 10 image. Measured
with Pillow 13 on 19 MB files: a JPEG signature followed by zeros 1.5 s, by 0xFF fill bytes
8 s, by empty segments 4-5 s; 4,000 continued Exif segments 3 s; a PNG of 1.6 M empty
chunks 7 s; a GIF comment of 1-byte sub-blocks 5.5 s. In the run process (``/classify``,
thumbnails) that CPU is taken from every other request.

Real images are made of few pieces: a photo's JPEG header has a few dozen segments (up to a
few hundred ICC profile chunks) and no junk; a PNG's IDAT chunks are 8 KB or more; a GIF's
extensions before its first image are a handful of blocks. ``check_parse_budget`` walks
those pieces with ``bytes.find`` and the lengths they declare, stopping at the limit, so it
costs a few milliseconds whatever the file, and refuses a file that would make Pillow take
more than ``MAX_PARSE_STEPS`` steps (for PNG, one more per KB of file).
"""

from __future__ import annotations

import re

from PIL.JpegImagePlugin import DQT, MARKER, SOF

from .errors import InvalidImageError

MAX_PARSE_STEPS = 4096
JPEG_SIGNATURE = b"\xff\xd8\xff"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
_START_OF_SCAN = 0xFFDA
_APP1 = 0xFFE1
_PHOTOSHOP = 0xFFED
_EXIF = b"Exif\0\0"
# Handlers that loop over their segment's bytes in Python (about one step per 12 bytes);
# Pillow concatenates continued Exif segments (a copy of all before: one step per 4 KB).
_PER_BYTE_HANDLERS = (SOF, DQT)
_BYTES_PER_STEP = 12
_EXIF_BYTES_PER_STEP = 4096
_GIF_EXTENSION = 0x21  # "!"
_GIF_IMAGE_OR_END = (0x2C, 0x3B)  # "," and ";"
_GIF_TAG = re.compile(rb"[!,;]")


def check_parse_budget(data: bytes) -> None:
    """Raise ``InvalidImageError`` for a JPEG, PNG or GIF made of so many small pieces that
    Pillow would spend seconds walking them in Python; anything else passes."""
    head = data[:8]
    if head.startswith(JPEG_SIGNATURE):
        kind, over = "JPEG", _jpeg_over(data, MAX_PARSE_STEPS)
    elif head == PNG_SIGNATURE:
        kind, over = "PNG", _png_over(data, MAX_PARSE_STEPS + len(data) // 1024)
    elif head[:6] in GIF_SIGNATURES:
        kind, over = "GIF", _gif_over(data, MAX_PARSE_STEPS)
    else:
        return
    if over:
        raise InvalidImageError(
            f"The {kind} file is corrupt: it is made of thousands of tiny pieces (junk or "
            "padding bytes, empty segments, chunks or blocks) where an image has a few. "
            "Save the image again and upload the new file."
        )


def _jpeg_over(data: bytes, limit: int) -> bool:
    """Whether Pillow's ``JpegImageFile._open`` would take more than ``limit`` steps."""
    position, steps, size, exif_bytes = 2, 0, len(data), 0  # after the start-of-image marker
    while position + 1 < size and steps <= limit:
        if data[position] != 0xFF:  # junk between segments: read a byte at a time
            window = position + limit - steps + 1  # looking further proves nothing more
            found = data.find(b"\xff", position, window)
            following = min(size, window) if found < 0 else found
            steps += following - position
            position = following
            continue
        marker = 0xFF00 | data[position + 1]
        steps += 1
        if marker == 0xFFFF:  # a fill byte
            position += 1
        elif marker == 0xFF00:  # an escaped 0xFF outside the image data: junk
            position += 2
        elif marker == _START_OF_SCAN or marker not in MARKER:
            return False  # the image data (libjpeg's, in C), or a corrupt file Pillow stops at
        elif MARKER[marker][2] is None:  # a marker without a segment
            position += 2
        else:
            length = max(2, int.from_bytes(data[position + 2 : position + 4], "big"))
            handler = MARKER[marker][2]
            payload = data[position + 4 : position + 4 + len(_EXIF)]
            if handler in _PER_BYTE_HANDLERS or marker == _PHOTOSHOP:
                steps += length // _BYTES_PER_STEP
            elif marker == _APP1 and payload == _EXIF:
                steps += exif_bytes // _EXIF_BYTES_PER_STEP
                exif_bytes += length
            position += 2 + length
    return steps > limit


def _png_over(data: bytes, limit: int) -> bool:
    """Whether the PNG has more than ``limit`` chunks (Pillow handles each in Python)."""
    position, chunks, size = len(PNG_SIGNATURE), 0, len(data)
    while position + 8 <= size:
        chunks += 1
        if chunks > limit:
            return True
        if data[position + 4 : position + 8] == b"IEND":
            return False
        position += 12 + int.from_bytes(data[position : position + 4], "big")
    return False


def _gif_over(data: bytes, limit: int) -> bool:
    """Whether Pillow would take more than ``limit`` steps to reach the GIF's first image:
    it reads extensions one sub-block at a time, and skips unknown bytes one at a time."""
    size = len(data)
    if size < 13:
        return False
    packed = data[10]
    position = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)  # global color table
    steps = 0
    while position < size and steps <= limit:
        if data[position] == _GIF_EXTENSION:
            position += 2  # introducer and label, then sub-blocks up to an empty one
            while position < size and data[position] != 0 and steps <= limit:
                steps += 1
                position += 1 + data[position]
            position += 1
        elif data[position] in _GIF_IMAGE_OR_END:
            return False
        else:  # junk
            window = position + limit - steps + 1
            found = _GIF_TAG.search(data, position, window)
            following = min(size, window) if found is None else found.start()
            steps += following - position
            position = following
    return steps > limit
