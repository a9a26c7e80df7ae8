"""S3 user metadata that may hold any text: RFC 2047 encoded words on the wire.

S3 user metadata travels in HTTP headers, which carry US-ASCII only: botocore refuses a
value with any other character before sending it (``ParamValidationError``: "S3 metadata
can only contain ASCII characters"), so an upload named ``café.jpg`` could not be
stored. S3's documented answer is RFC 2047: it stores ``=?UTF-8?B?...?=`` values decoded
and returns them encoded the same way. So values are sent as encoded words when they are
not ASCII (or could be mistaken for encoded words), and every value read back is decoded.
"""

from __future__ import annotations

import base64
import email.errors
import email.header
import re
from collections.abc import Mapping

# One encoded word stays within RFC 2047's 75 characters: 45 bytes -> 60 base64 characters.
_WORD_BYTES = 45
_ENCODED_WORDS = re.compile(r"(=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=\s*)+")


def _needs_encoding(value: str) -> bool:
    return not value.isascii() or "=?" in value


def _encoded_words(value: str) -> str:
    """``value`` as UTF-8 base64 encoded words, split between characters."""
    chunks: list[bytes] = []
    chunk = b""
    for char in value:
        data = char.encode()
        if len(chunk) + len(data) > _WORD_BYTES:
            chunks.append(chunk)
            chunk = b""
        chunk += data
    chunks.append(chunk)
    return " ".join(f"=?UTF-8?B?{base64.b64encode(c).decode()}?=" for c in chunks)


def _decoded(value: str) -> str:
    if not _ENCODED_WORDS.fullmatch(value.strip()):
        return value
    try:
        parts = email.header.decode_header(value)
        return "".join(
            part.decode(charset or "ascii", errors="replace") if isinstance(part, bytes) else part
            for part, charset in parts
        )
    except (email.errors.HeaderParseError, LookupError, ValueError):
        return value  # not ours after all: keep it as S3 returned it


def encode_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """User metadata as ``put_object(Metadata=...)`` can send it."""
    return {
        key: _encoded_words(value) if _needs_encoding(value) else value
        for key, value in metadata.items()
    }


def decode_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """User metadata as HeadObject returns it, with encoded words decoded."""
    return {key: _decoded(value) for key, value in metadata.items()}
