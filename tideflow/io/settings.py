"""Reading a provider's settings from the environment: each stack reads its own once.

Each provider keeps its settings in one typed object (``GcpSettings``, ``AwsSettings``,
``LocalSettings``) built by ``from_environ``; these helpers read one variable each,
empty meaning unset, and name the variable when its value is bad.
"""

from __future__ import annotations

from collections.abc import Mapping

from tideflow.exceptions import ConfigError


def env_text(environ: Mapping[str, str], name: str) -> str | None:
    """The variable's value without surrounding spaces; None when unset or empty."""
    return environ.get(name, "").strip() or None


def env_seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    """A duration in seconds (empty: ``default``)."""
    value = env_text(environ, name)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be seconds, got {value!r}") from exc


def env_flag(environ: Mapping[str, str], name: str) -> bool:
    """``true``/``1`` or ``false``/``0`` (empty: false)."""
    value = (env_text(environ, name) or "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value in ("true", "1")
