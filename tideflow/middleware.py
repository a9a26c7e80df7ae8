"""Middleware for ``Service.add_middleware`` (Starlette's, where BuildFlow apps import it)."""

from __future__ import annotations

from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware

__all__ = ["CORSMiddleware", "GZipMiddleware"]  # and SessionMiddleware, below


def __getattr__(name: str) -> Any:
    # SessionMiddleware needs itsdangerous: imported only when asked for.
    if name == "SessionMiddleware":
        from starlette.middleware.sessions import SessionMiddleware

        return SessionMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
