import pytest

from tideflow.exceptions import InvalidKeyError
from tideflow.io.keys import validate_key


@pytest.mark.parametrize("key", ["a.png", "uploads/2026/x.jpg", "näme with spaces.png", "a" * 1024])
def test_safe_keys_pass(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "empty"),
        ("/etc/passwd", "relative name"),
        ("../secret", "'..' segment"),
        ("a/../../b", "'..' segment"),
        ("a//b", "empty, '.' or '..'"),
        ("./a", "'.'"),
        ("a\x00b", "control characters"),
        ("line\nbreak", "control characters"),
        ("dir\\file", "Windows path"),
        ("a" * 1025, "longer than 1024 bytes"),
        ("é" * 600, "longer than 1024 bytes"),
        (".tideflow-tmp/x", "reserved"),
    ],
)
def test_unsafe_keys_are_rejected_with_a_reason(key: str, reason: str) -> None:
    with pytest.raises(InvalidKeyError, match=None) as error:
        validate_key(key)
    assert reason in str(error.value)
