"""Decoding every kind of upload: bad files, odd modes, EXIF orientation, formats, bombs."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from image_classification.model import (
    Classifier,
    DecodedImage,
    InvalidImageError,
    PreprocessSpec,
    decode_image,
    probe_image,
)
from image_classification.model.preprocess import image_to_pixels, open_image

CAT_LABELS = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}
Encode = Callable[..., bytes]


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height (the pixel data is never there)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def top1(classifier: Classifier, data: bytes) -> str:
    return classifier.classify(data, top_k=1)[0].label


# --- bad inputs -------------------------------------------------------------------------------


def test_empty_bytes() -> None:
    with pytest.raises(InvalidImageError, match="empty"):
        decode_image(b"")


@pytest.mark.parametrize(
    "data",
    [b"hello, I am plain text\n", b"%PDF-1.7\n", b"<svg xmlns='http://www.w3.org/2000/svg'/>"],
)
def test_not_an_image(data: bytes) -> None:
    with pytest.raises(InvalidImageError, match="not an image we can read: expected JPEG"):
        decode_image(data)


def test_wrong_type_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        decode_image("chelsea.png")  # type: ignore[arg-type]


def test_truncated_jpeg(cat_image: Image.Image, encode: Encode) -> None:
    data = encode(cat_image, "JPEG", quality=90)
    with pytest.raises(InvalidImageError, match="truncated"):
        decode_image(data[: len(data) // 2])
    # The header is intact: the cheap probe accepts it, as documented.
    assert probe_image(data[: len(data) // 2]).format == "JPEG"


def test_truncated_png(photos: dict) -> None:
    data = photos["cat"]
    with pytest.raises(InvalidImageError):
        decode_image(data[: len(data) // 3])


def test_png_bomb_is_refused_from_the_header() -> None:
    bomb = png_header_only(100_000, 100_000)  # 10 G pixels declared in 57 bytes
    assert len(bomb) < 100
    with pytest.raises(InvalidImageError, match="too large"):
        decode_image(bomb)
    with pytest.raises(InvalidImageError, match="too large"):
        probe_image(bomb)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_size_in_pillows_warning_range_is_an_error() -> None:
    # Between MAX_IMAGE_PIXELS and twice that Pillow only warns; we refuse.
    side = int((Image.MAX_IMAGE_PIXELS * 1.2) ** 0.5)
    with pytest.raises(InvalidImageError, match="too large"):
        decode_image(png_header_only(side, side))


def test_max_pixels_can_be_lowered(photos: dict) -> None:
    with pytest.raises(InvalidImageError, match="limit is 10,000 pixels"):
        decode_image(photos["cat"], max_pixels=10_000)


def test_unsupported_formats_are_not_opened(cat_image: Image.Image, encode: Encode) -> None:
    for fmt in ("PPM", "ICO", "TGA", "PCX"):
        with pytest.raises(InvalidImageError, match="not an image we can read"):
            decode_image(encode(cat_image.resize((64, 48)), fmt))


# --- formats and modes ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_accepted_formats(cat_image: Image.Image, encode: Encode, fmt: str) -> None:
    decoded = decode_image(encode(cat_image, fmt))
    assert decoded.format == fmt
    assert (decoded.width, decoded.height) == cat_image.size
    assert decoded.pixels.shape == (3, 224, 224) and decoded.pixels.dtype == np.float32


def test_mpo_camera_jpeg_is_a_jpeg(cat_image: Image.Image, encode: Encode) -> None:
    # Many phones write MPO (a JPEG followed by more JPEGs); Pillow calls it "MPO".
    data = encode(cat_image, "MPO", save_all=True, append_images=[cat_image])
    decoded = decode_image(data)
    assert decoded.format == "JPEG"
    np.testing.assert_allclose(
        decoded.pixels, decode_image(encode(cat_image, "JPEG")).pixels, atol=1e-5
    )


def test_gif_uses_the_first_frame(encode: Encode) -> None:
    frames = [Image.new("RGB", (64, 64), color) for color in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    gif = decode_image(data)
    red = decode_image(encode(frames[0], "PNG"))
    np.testing.assert_allclose(gif.pixels, red.pixels, atol=1e-5)


def test_cmyk_jpeg(lite0_onnx: Classifier, cat_image: Image.Image, encode: Encode) -> None:
    data = encode(cat_image.convert("CMYK"), "JPEG", quality=95)
    result = lite0_onnx.classify_with_info(data, top_k=5)
    assert result.info.mode == "CMYK"
    assert {c.label for c in result.classifications} & CAT_LABELS


def test_16_bit_png_is_scaled_not_clipped(
    lite0_onnx: Classifier, cat_image: Image.Image, encode: Encode
) -> None:
    gray8 = np.asarray(cat_image.convert("L"), dtype=np.uint16)
    data16 = encode(Image.fromarray(gray8 * 257), "PNG")  # full 16-bit range
    decoded16 = decode_image(data16)
    assert decoded16.info.mode.startswith("I")
    decoded8 = decode_image(encode(Image.fromarray(gray8.astype(np.uint8)), "PNG"))
    np.testing.assert_allclose(decoded16.pixels, decoded8.pixels, atol=1e-5)
    assert top1(lite0_onnx, data16) == top1(lite0_onnx, encode(cat_image.convert("L"), "PNG"))
    # A dark 16-bit image (all values < 256 of 65535) stays black, not stretched to 8 bits.
    dark, _ = open_image(encode(Image.fromarray(np.full((64, 64), 200, np.uint16)), "PNG"))
    assert dark.getpixel((0, 0)) == (0, 0, 0)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "1", "I", "F", "YCbCr"])
def test_any_mode_becomes_rgb(cat_image: Image.Image, mode: str) -> None:
    image, _ = open_image(_encode_mode(cat_image, mode))
    assert image.mode == "RGB" and image.size == cat_image.size
    pixels = image_to_pixels(image)
    assert np.isfinite(pixels).all()


def _encode_mode(image: Image.Image, mode: str) -> bytes:
    import io

    converted = image.convert(mode)
    buffer = io.BytesIO()
    # TIFF stores every one of these modes.
    converted.save(buffer, "TIFF" if mode in ("I", "F", "YCbCr") else "PNG")
    return buffer.getvalue()


def test_transparency_is_shown_on_white(encode: Encode) -> None:
    clear = Image.new("RGBA", (300, 300), (0, 0, 0, 0))  # transparent black
    white = Image.new("RGB", (300, 300), (255, 255, 255))
    np.testing.assert_allclose(
        decode_image(encode(clear, "PNG")).pixels, decode_image(encode(white, "PNG")).pixels
    )
    palette = clear.convert("P")
    palette.info["transparency"] = 0
    np.testing.assert_allclose(
        decode_image(encode(palette, "PNG", transparency=0)).pixels,
        decode_image(encode(white, "PNG")).pixels,
    )


def test_exif_orientation_6(lite0_onnx: Classifier, cat_image: Image.Image, encode: Encode) -> None:
    # A camera held upright stores the pixels rotated and tags orientation 6 ("rotate 90 CW to
    # display"): the stored image is the upright one turned 90 degrees counter-clockwise.
    upright = encode(cat_image, "JPEG", quality=95)
    stored = cat_image.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    tagged = encode(stored, "JPEG", quality=95, exif=exif.tobytes())

    info = probe_image(tagged)
    assert (info.width, info.height) == cat_image.size  # as displayed, not as stored
    assert top1(lite0_onnx, tagged) == top1(lite0_onnx, upright)
    decoded = decode_image(tagged)
    assert np.abs(decoded.pixels - decode_image(upright).pixels).mean() < 0.05
    # Without the tag the rotated photo is a different input altogether.
    assert (
        np.abs(decode_image(encode(stored, "JPEG", quality=95)).pixels - decoded.pixels).mean()
        > 0.2
    )


def test_extreme_aspect_ratio_stays_small(encode: Encode) -> None:
    strip = Image.new("RGB", (40_000, 2), (10, 200, 30))
    decoded = decode_image(encode(strip, "PNG"))
    assert decoded.pixels.shape == (3, 224, 224)
    assert (decoded.width, decoded.height) == (40_000, 2)


# --- the transform ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(451, 300), (300, 451), (257, 1000), (224, 224), (100, 80)])
def test_transform_matches_torchvision_and_imageai(cat_image: Image.Image, size: tuple) -> None:
    # ImageAI's classifyImage transform, verbatim.
    reference = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    image = cat_image.resize(size)
    expected = reference(image).numpy()
    np.testing.assert_allclose(image_to_pixels(image), expected, atol=1e-5)
    assert isinstance(torch.from_numpy(expected), torch.Tensor)


def test_custom_preprocess_spec(cat_image: Image.Image, encode: Encode) -> None:
    spec = PreprocessSpec(resize=342, crop=299)
    decoded = decode_image(encode(cat_image, "PNG"), spec)
    assert isinstance(decoded, DecodedImage) and decoded.pixels.shape == (3, 299, 299)
    with pytest.raises(ValueError):
        PreprocessSpec(resize=200, crop=224)


def test_big_jpeg_is_drafted(cat_image: Image.Image, encode: Encode) -> None:
    data = encode(cat_image.resize((4000, 3000)), "JPEG", quality=90)
    image, info = open_image(data, min_size=256)
    assert (info.width, info.height) == (4000, 3000)
    assert image.size == (500, 375)  # decoded at 1/8 scale, shorter side still >= 256
    full, _ = open_image(data)
    assert full.size == (4000, 3000)
