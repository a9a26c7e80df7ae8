"""Image ids: URL-safe, reversible to (key, version), and never an unsafe key."""

from __future__ import annotations

import base64
import re

import pytest

from image_classification.image_ids import InvalidImageIdError, image_id_for, parse_image_id


@pytest.mark.parametrize(
    "key", ["uploads/0f3a.jpg", "holiday photos/IMG 001.JPG", "été/ünïcode.png", "a"]
)
# A local or GCS generation, an S3 version id, an S3 ETag.
@pytest.mark.parametrize("version", ["42", "3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY", "9b2cf535f27731c9"])
def test_round_trip_and_url_safe(key: str, version: str) -> None:
    image_id = image_id_for(key, version)
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", image_id)
    assert parse_image_id(image_id) == (key, version)


def test_each_version_has_its_own_id() -> None:
    assert image_id_for("a.png", "1") != image_id_for("a.png", "2")


@pytest.mark.parametrize(
    "version",
    [
        # S3 version ids as S3 hands them (tideflow carries them as they are).
        "096fKKXTRTtl3on89fVO.nfljtsv6qko",
        "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo",
        "a/b=c",
        "x-looks-encoded",
        "h-looks-hashed",
        "v" * 300,
        "é" * 10,
        # ETags: hex MD5, and multipart ones ending in -N.
        "d41d8cd98f00b204e9800998ecf8427e",
        "d41d8cd98f00b204e9800998ecf8427e-12",
    ],
)
def test_any_version_fits_an_id_and_reads_back(version: str) -> None:
    image_id = image_id_for("uploads/a b.jpg", version)
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", image_id)
    assert parse_image_id(image_id) == ("uploads/a b.jpg", version)


def test_ids_stored_before_versions_were_opaque_read_back_the_same() -> None:
    # tideflow used to write such an S3 version id as "x-<base64>" itself; the app's ids
    # were made from that, and they give the version id S3 knows.
    version_id = "096fKKXTRTtl3on89fVO.nfljtsv6qko"
    stored_then = "dXBsb2Fkcy9hLmpwZw.x-MDk2ZktLWFRSVHRsM29uODlmVk8ubmZsanRzdjZxa28"
    assert parse_image_id(stored_then) == ("uploads/a.jpg", version_id)
    assert image_id_for("uploads/a.jpg", version_id) == stored_then


def _encoded(raw: bytes, suffix: str = ".1") -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=") + suffix


@pytest.mark.parametrize(
    "image_id",
    [
        "",
        "abc",
        "abc.",
        "abc.x",
        _encoded(b"ok.png", ".a.b"),
        _encoded(b"ok.png", "." + "9" * 129),
        _encoded(b"../secret"),
        _encoded(b"/etc/passwd"),
        _encoded(b"a/../../b"),
        _encoded(b".tideflow-tmp/x"),
        _encoded(b"\xff\xfe"),
        _encoded(b"ok.png") + "=",
        _encoded(b"ok.png", ".x-"),
        _encoded(b"ok.png", ".x-AB"),
        _encoded(b"ok.png", ".x-" + _encoded(b"plain", "")),
        _encoded(b"ok.png", ".x-" + _encoded(b"\xff", "")),
    ],
)
def test_malformed_or_unsafe_ids_are_refused(image_id: str) -> None:
    with pytest.raises(InvalidImageIdError):
        parse_image_id(image_id)
