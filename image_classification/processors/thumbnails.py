"""``/images/{image_id}/thumbnail``: small JPEG previews of stored images, decoded with the
classifier's safe decoder (HEAD and a single byte ``Range`` work too)."""

from __future__ import annotations

import io

from fastapi import HTTPException

from image_classification.dependencies import Objects, SettingsDep
from image_classification.image_ids import InvalidImageIdError, parse_image_id
from image_classification.model import InvalidImageError, open_image
from image_classification.processors.auth import Authorized
from image_classification.processors.classify_guard import Slots, check_pixel_budget
from image_classification.processors.errors import error_responses
from image_classification.processors.hardening import byte_range
from tideflow import Router
from tideflow.exceptions import ObjectNotFoundError
from tideflow.requests import Request
from tideflow.responses import Response

THUMBNAIL_PIXELS = 192  # twice the 96 px cell of the results page, for high-DPI screens
THUMBNAIL_SLOT_WAIT_SECONDS = 10.0
_JPEG_QUALITY = 80
_IMAGE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"}

router = Router()


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


@router.endpoint(
    "/images/{image_id}/thumbnail",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}},
        206: {"content": {"image/jpeg": {}}, "description": "The bytes a Range asked for."},
        **error_responses(400, 401, 404, 416, 503),
    },
    summary="A small JPEG preview of a stored image (HEAD and single byte Range work too)",
)
def thumbnail(
    request: Request,
    image_id: str,
    auth: Authorized,
    objects: Objects,
    settings: SettingsDep,
    slots: Slots,
) -> Response:
    try:
        key, version = parse_image_id(image_id)
    except InvalidImageIdError as exc:
        raise HTTPException(404, "No image with this id.") from exc
    stored = objects.stat(key)
    # Files copied into the bucket may be any size; previews are made of upload-sized ones.
    if stored is None or stored.size > settings.max_upload_bytes:
        raise HTTPException(404, "No preview for this image.")
    # Decoded in the run process: the same slots and pixel budget as /classify, but a
    # results page asks for many previews at once, so they wait a little for a slot.
    with slots.take(wait=THUMBNAIL_SLOT_WAIT_SECONDS):
        try:
            data = objects.get(key, version=version)
            check_pixel_budget(
                data, min_size=THUMBNAIL_PIXELS, max_pixels=settings.classify_max_pixels
            )
            preview = make_thumbnail(data)
        except (ObjectNotFoundError, InvalidImageError) as exc:
            raise HTTPException(404, "No preview for this image.") from exc
        except HTTPException as exc:
            if exc.status_code != 413:
                raise
            raise HTTPException(404, "No preview for this image (too many pixels).") from exc
    return _ranged(request, preview)


# HEAD: the same answer without its body (Uvicorn drops the body of a HEAD response).
router.endpoint("/images/{image_id}/thumbnail", method="HEAD", include_in_schema=False)(thumbnail)


def _ranged(request: Request, body: bytes) -> Response:
    headers = {**_IMAGE_HEADERS, "Accept-Ranges": "bytes"}
    wanted = byte_range(request.headers.get("range"), len(body))
    if wanted is False:
        headers["Content-Range"] = f"bytes */{len(body)}"
        return Response(status_code=416, headers=headers)
    if wanted is None or wanted is True:
        return Response(body, media_type="image/jpeg", headers=headers)
    first, last = wanted
    headers["Content-Range"] = f"bytes {first}-{last}/{len(body)}"
    return Response(body[first : last + 1], 206, media_type="image/jpeg", headers=headers)
