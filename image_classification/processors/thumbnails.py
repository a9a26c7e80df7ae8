"""Small JPEG previews of stored images, decoded with the classifier's safe decoder."""

from __future__ import annotations

import io

from image_classification.model import open_image

THUMBNAIL_PIXELS = 192  # twice the 96 px cell of the results page, for high-DPI screens
_JPEG_QUALITY = 80


def make_thumbnail(data: bytes) -> bytes:
    """A JPEG at most ``THUMBNAIL_PIXELS`` on its longer side.

    Raises ``InvalidImageError`` for anything that is not a safe, decodable image: formats
    outside the upload list, decompression bombs (checked from the header), corrupt files.
    """
    # min_size lets big JPEGs decode at 1/2..1/8 scale (libjpeg's DCT scaling).
    image, _ = open_image(data, min_size=THUMBNAIL_PIXELS)
    image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=_JPEG_QUALITY)
    return out.getvalue()
