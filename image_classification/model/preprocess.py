"""Safe, fast image decoding and the model's input transform.

The transform reproduces torchvision's ``Resize(256)`` (shorter side, bilinear, on the PIL
image), ``CenterCrop(224)``, ``ToTensor()`` and ``Normalize(mean, std)`` exactly, because that is
what ImageAI's ``classifyImage`` does: the ``imageai`` engine is our oracle, so for the same RGB
image the ``onnxruntime``/``torch`` engines must see the same tensor. Two deliberate
differences, both only for inputs the tutorial's path handles badly:

* big JPEGs are decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, Pillow's ``draft``),
  never below the resize target: a 12 MP photo then decodes in a few ms instead of ~100 ms;
* EXIF orientation is applied, alpha is composited on white and 16-bit grayscale is scaled
  down to 8 bits (a plain ``convert("RGB")`` would rotate, blacken or saturate those images).

Safety: only the raster formats people upload are opened; a JPEG, PNG or GIF that would make
Pillow walk thousands of tiny pieces in Python is refused first (``parse_budget.py``); the
pixel count is checked against Pillow's decompression-bomb limit from the header, before any
pixel is decoded; anything that fails to decode becomes an ``InvalidImageError`` whose
message can be shown to the uploader.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from .datatypes import DecodedImage, ImageInfo
from .errors import InvalidImageError
from .parse_budget import check_parse_budget

ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's default MAX_IMAGE_PIXELS (about 0.25 GB of RGBA)
_FORMAT_NAMES = "JPEG, PNG, WebP, GIF, BMP or TIFF"

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# EXIF orientation tag value -> the transpose that makes the image upright (as Pillow's
# ImageOps.exif_transpose does; we apply it ourselves to transpose the small drafted image).
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# A resized long side beyond this many times the resize target only feeds pixels the center
# crop throws away; for absurd aspect ratios (a 1x50000 strip) it would also allocate a huge
# intermediate image, so we cut the source down to the central part first.
_MAX_ASPECT_AFTER_RESIZE = 8

# Pillow's resize with reducing_gap first shrinks by an integer factor with a box filter, which
# is much faster for big non-JPEG images (no draft there). Resizes by less than 2 * gap are not
# affected, so the ordinary photos on which we match ImageAI stay bit-identical.
_REDUCING_GAP = 3.0


@dataclass(frozen=True, slots=True)
class PreprocessSpec:
    """How a model wants its input: shorter side -> ``resize``, center crop ``crop``, normalize.

    ``mean``/``std`` are per channel on the 0..1 scale, as torchvision's ``Normalize`` takes them.
    ``version`` is part of ``Classifier.model_id``: change it whenever the produced pixels change,
    so stored results say which preprocessing made them.
    """

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    version: str = "pre1"

    def __post_init__(self) -> None:
        if not 0 < self.crop <= self.resize:
            raise ValueError(f"need 0 < crop <= resize, got crop={self.crop} resize={self.resize}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("mean and std need 3 values each, std > 0")


DEFAULT_PREPROCESS = PreprocessSpec()


def probe_image(data: bytes, *, max_pixels: int | None = None) -> ImageInfo:
    """Read only the header: format, displayed size and mode. Cheap (no pixel is decoded).

    Use it to validate an upload before storing it. It does not catch every corrupt file (a
    truncated JPEG has a valid header); ``decode_image`` or ``Classifier.classify`` does.
    """
    image, info, _ = _open(data, max_pixels=max_pixels, load_exif=False)
    image.close()
    return info


def decoded_size(
    data: bytes, *, min_size: int | None = None, max_pixels: int | None = None
) -> tuple[int, int]:
    """The width and height ``open_image(data, min_size=...)`` would decode, from the header.

    Cheap (no pixel is decoded): for a large JPEG it is the reduced draft size, for other
    formats the full size. Lets a caller refuse an image whose decoded pixels would take
    more memory than it wants to spend, before spending it.
    """
    image, _, _ = _open(data, max_pixels=max_pixels, load_exif=False)
    try:
        if min_size is not None and image.format in ("JPEG", "MPO"):
            image.draft(None, (min_size, min_size))
        return image.size
    finally:
        image.close()


def open_image(
    data: bytes, *, min_size: int | None = None, max_pixels: int | None = None
) -> tuple[Image.Image, ImageInfo]:
    """Decode to an upright RGB Pillow image.

    With ``min_size``, a large JPEG is decoded at a reduced scale whose shorter side is still at
    least ``min_size`` pixels (Pillow's draft mode); without it the image is decoded in full.
    """
    image, info, orientation = _open(data, max_pixels=max_pixels, load_exif=True)
    try:
        if min_size is not None and image.format in ("JPEG", "MPO"):
            image.draft(None, (min_size, min_size))
        image.load()
        rgb = _to_rgb(image)
        if rgb is not image:
            image.close()  # frees the decoded pixels now, not when the caller is done
        if orientation in _TRANSPOSE:
            rgb = rgb.transpose(_TRANSPOSE[orientation])
    except InvalidImageError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, struct.error...)
        raise InvalidImageError(_decode_failure_message(exc)) from exc
    return rgb, info


def decode_image(
    data: bytes, spec: PreprocessSpec = DEFAULT_PREPROCESS, *, max_pixels: int | None = None
) -> DecodedImage:
    """Decode, check and transform an upload into the model's input tensor (3 x crop x crop)."""
    image, info = open_image(data, min_size=spec.resize, max_pixels=max_pixels)
    return DecodedImage(info=info, pixels=image_to_pixels(image, spec))


def image_to_pixels(image: Image.Image, spec: PreprocessSpec = DEFAULT_PREPROCESS) -> np.ndarray:
    """torchvision's Resize(spec.resize) + CenterCrop(spec.crop) + ToTensor + Normalize."""
    if image.mode != "RGB":
        image = _to_rgb(image)
    image = _limit_aspect(image, spec.resize)
    width, height = image.size
    new_w, new_h = _resized_size(width, height, spec.resize)
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=_REDUCING_GAP)
    # Same rounding as torchvision's center_crop (Python's round: half to even).
    top = round((new_h - spec.crop) / 2.0)
    left = round((new_w - spec.crop) / 2.0)
    image = image.crop((left, top, left + spec.crop, top + spec.crop))
    hwc = np.asarray(image, dtype=np.float32)
    scale, bias = _normalization(spec)
    # (x / 255 - mean) / std folded into one multiply-add.
    hwc = hwc * scale + bias
    return np.ascontiguousarray(hwc.transpose(2, 0, 1))


def _normalization(spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
    std = np.asarray(spec.std, dtype=np.float64)
    mean = np.asarray(spec.mean, dtype=np.float64)
    return (1.0 / (255.0 * std)).astype(np.float32), (-mean / std).astype(np.float32)


def _resized_size(width: int, height: int, target_short: int) -> tuple[int, int]:
    # torchvision's _compute_resized_output_size for an int size (same float expression).
    if width <= height:
        return target_short, int(target_short * height / width)
    return int(target_short * width / height), target_short


def _limit_aspect(image: Image.Image, target_short: int) -> Image.Image:
    width, height = image.size
    short, long_ = min(width, height), max(width, height)
    max_long_resized = _MAX_ASPECT_AFTER_RESIZE * target_short
    if target_short * long_ / short <= max_long_resized:
        return image
    keep = max(1, math.ceil(max_long_resized * short / target_short))
    start = (long_ - keep) // 2
    if width > height:
        return image.crop((start, 0, start + keep, height))
    return image.crop((0, start, width, start + keep))


def _open(
    data: bytes, *, max_pixels: int | None, load_exif: bool
) -> tuple[Image.Image, ImageInfo, int]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"image data must be bytes, not {type(data).__name__}")
    if len(data) == 0:
        raise InvalidImageError(f"The file is empty (0 bytes). Upload a {_FORMAT_NAMES} image.")
    # Pillow's limit (~89 MP unless the app changed it); never unlimited, even if someone set
    # Pillow's to None.
    limit = max_pixels if max_pixels is not None else (Image.MAX_IMAGE_PIXELS or DEFAULT_MAX_PIXELS)
    check_parse_budget(bytes(data))  # before Pillow walks a hostile file in Python
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError:
        raise InvalidImageError(_too_large_message(None, limit)) from None
    except UnidentifiedImageError:
        raise InvalidImageError(
            f"The file is not an image we can read: expected {_FORMAT_NAMES}."
        ) from None
    except MemoryError:
        raise
    except Exception as exc:
        raise InvalidImageError(_decode_failure_message(exc)) from exc
    width, height = image.size
    # Pillow only warns between MAX_IMAGE_PIXELS and twice that; we refuse at the warning level.
    # Checked here, from the header, so no pixel buffer is ever allocated for a bomb.
    if width * height > limit:
        image.close()
        raise InvalidImageError(_too_large_message((width, height), limit))
    orientation = _orientation(image, load_exif=load_exif)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    fmt = "JPEG" if image.format == "MPO" else str(image.format)
    return image, ImageInfo(format=fmt, width=width, height=height, mode=image.mode), orientation


def _orientation(image: Image.Image, *, load_exif: bool) -> int:
    # For PNG, getexif() may decode the whole image to find an eXIf chunk stored after the pixel
    # data; the header-only probe therefore uses only EXIF data already seen in the header.
    if not load_exif and image.format == "PNG" and "exif" not in image.info:
        return 1
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not make a viewable photo unusable
        return 1
    return value if isinstance(value, int) and value in _TRANSPOSE else 1


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        # Transparent pixels often hold black or garbage color values: show them on white,
        # as a browser displays a transparent PNG on a white page.
        if mode == "LA" and "transparency" not in image.info:
            # The same blend on one channel instead of three (gray stays gray): less memory
            # for the costliest images /classify takes.
            gray, alpha = image.split()
            white = Image.new("L", image.size, 255)
            white.paste(gray, mask=alpha)
            del gray, alpha
            return white.convert("RGB")
        # (No copy when it is RGBA already: /classify bounds the memory a decode may take.)
        rgba = image if mode == "RGBA" else image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if mode.startswith("I;16") or mode == "I":
        # 16-bit grayscale (PNG/TIFF): convert("L") would clip at 255, turning the photo white.
        # "I" (32-bit) is what some decoders give for 16-bit files too; there, values that all
        # fit in 8 bits are taken as 8-bit data.
        values = np.asarray(image)
        if values.dtype.kind == "u" and values.itemsize <= 2:
            # Unsigned 16-bit data: // 257 in place of clipping, in 2 bytes a pixel, not 8.
            values = values // 257 if mode != "I" or values.max(initial=0) > 255 else values
            return Image.fromarray(values.astype(np.uint8)).convert("RGB")
        values = values.astype(np.int64)
        if mode != "I" or values.max(initial=0) > 255:
            values = np.clip(values, 0, 65535) // 257
        return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8)).convert("RGB")
    if mode == "F":
        floats = np.nan_to_num(np.asarray(image, dtype=np.float32))
        if floats.max(initial=0.0) <= 1.0:
            floats = floats * 255.0
        return Image.fromarray(np.clip(floats, 0, 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def _too_large_message(size: tuple[int, int] | None, limit: int) -> str:
    if size is None:
        detail = "its header declares far more pixels than allowed"
    else:
        detail = f"{size[0]} x {size[1]} = {size[0] * size[1]:,} pixels"
    return (
        f"The image is too large ({detail}; the limit is {limit:,} pixels). "
        "Resize it before uploading."
    )


def _decode_failure_message(exc: Exception) -> str:
    text = str(exc)
    if "truncated" in text or isinstance(exc, EOFError):
        return "The image file is truncated: it ends before all pixels. Upload the complete file."
    return f"The image file is corrupt and cannot be decoded ({type(exc).__name__}: {text})."
