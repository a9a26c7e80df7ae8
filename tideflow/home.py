"""Where a stack keeps its local state: ``$TIDEFLOW_HOME`` or ``./.tideflow/<stack>``."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "TIDEFLOW_HOME"
STACK_ENV = "STACK"


def tideflow_home() -> Path:
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    return Path.cwd() / ".tideflow" / os.environ.get(STACK_ENV, "local")


def state_path(path: str | os.PathLike[str]) -> Path:
    """``path`` itself when absolute, else inside the stack's state directory."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else tideflow_home() / candidate
