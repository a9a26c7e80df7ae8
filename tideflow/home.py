"""Where a stack keeps its local state: ``$TIDEFLOW_HOME`` or ``./.tideflow/<stack>``.

Every folder tideflow creates for state is its owner's alone (0700): the state directory
holds uploads, the journal, the warehouse and the run's admin socket. The mode of a folder
that already exists is left as it is.
"""

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


def make_private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents with mode 0700 (``mkdir -p`` would give the
    parents the umask's mode, 0755 by default); nothing when it exists."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        if not path.is_dir():
            raise
    except FileNotFoundError:
        make_private_dir(path.parent)
        path.mkdir(mode=0o700, exist_ok=True)
