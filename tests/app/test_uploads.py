"""Upload checks: the type from the magic bytes, display names, and login redirects."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from image_classification.processors.auth import safe_next
from image_classification.processors.uploads import display_name, sniff_image_type
from tests.app.support import CHELSEA


def _encoded(image_format: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format=image_format)
    return out.getvalue()


@pytest.mark.parametrize(
    ("image_format", "mime"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("WEBP", "image/webp"),
        ("GIF", "image/gif"),
        ("BMP", "image/bmp"),
        ("TIFF", "image/tiff"),
    ],
)
def test_each_accepted_format_is_recognised(image_format: str, mime: str) -> None:
    found = sniff_image_type(_encoded(image_format)[:16])
    assert found is not None and found.mime == mime


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"hello world, not an image",
        b"%PDF-1.7\n",
        b"<svg xmlns=",
        b"BMW is a car brand",
        b"GIF8",
    ],
)
def test_other_bytes_are_not_images(head: bytes) -> None:
    assert sniff_image_type(head) is None


def test_a_real_photo_is_recognised() -> None:
    found = sniff_image_type(CHELSEA.read_bytes()[:16])
    assert found is not None and found.extension == "png"


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("cat.png", "cat.png"),
        ("C:\\Users\\me\\cat.png", "cat.png"),
        ("../../etc/passwd", "passwd"),
        ("a\x00b\u202ec.png", "abc.png"),
        ("<img src=x onerror=alert(1)>.png", "<img src=x onerror=alert(1)>.png"),
        ("", "unnamed"),
        (None, "unnamed"),
        ("x" * 1000, "x" * 255),
    ],
)
def test_display_name(given: str | None, shown: str) -> None:
    assert display_name(given) == shown


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/image-upload-results?label=cat", "/image-upload-results?label=cat"),
        (None, "/"),
        ("https://evil.example/", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
    ],
)
def test_safe_next(target: str | None, safe: str) -> None:
    assert safe_next(target) == safe
