"""The package's extras (pyproject.toml) and the one line that names a missing one.

The core serves; each extra brings the packages of one role (``gcp``, ``aws``,
``postgres``, ``torch``...). Code that imports an extra's packages does it where they are
needed, inside ``requires_extra``, so that a missing package stops with what to install
instead of a traceback::

    with requires_extra("gcp", "the gcp stack"):
        module = importlib.import_module("tideflow.io.gcp.stack")
    # ConfigError: the gcp stack needs the 'gcp' extra (google is not installed):
    #     pip install -e '.[gcp]'
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from tideflow.exceptions import ConfigError


def missing_extra(extra: str, needed_by: str, module: str | None = None) -> str:
    """The one-line message: what needs ``extra``, which module is missing, the command."""
    missing = f" ({module} is not installed)" if module else ""
    return f"{needed_by} needs the '{extra}' extra{missing}: pip install -e '.[{extra}]'"


@contextlib.contextmanager
def requires_extra(
    extra: str, needed_by: str, *, error: Callable[[str], Exception] = ConfigError
) -> Iterator[None]:
    """Turn a module missing inside the block into ``error(missing_extra(...))``."""
    try:
        yield
    except ModuleNotFoundError as exc:
        # The top-level name: the distribution a user recognises (google, not google.cloud).
        module = exc.name.partition(".")[0] if exc.name else None
        raise error(missing_extra(extra, needed_by, module)) from exc
