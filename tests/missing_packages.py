"""Running code where a package is not installed, to see what it says.

The package is hidden the way Python reports a missing one (``sys.modules[name] = None``
makes ``import name`` raise ModuleNotFoundError), in a fresh interpreter: the real package
stays installed for every other test, and nothing it already imported leaks in.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def said_without(package: str, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` where ``package`` is not installed; an exception it raises is printed
    as its last line of stdout, ``Type: message``."""
    lines = "\n".join(f"    {line}" for line in code.strip().splitlines())
    script = (
        f"import sys\nsys.modules[{package!r}] = None\ntry:\n{lines}\n"
        "except Exception as exc:\n    print(f'{type(exc).__name__}: {exc}')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def raised(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0 and done.stdout.strip(), done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]
