"""Import a flow from an ``module:attribute`` entry point."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from tideflow.exceptions import ConfigError
from tideflow.flow import Flow


def load_flow(entry_point: str, project_dir: Path) -> Flow:
    module_name, _, attribute = entry_point.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"entry_point must look like 'module:attribute', got {entry_point!r}")
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"cannot import entry point {entry_point!r} from {project_dir}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    flow = getattr(module, attribute, None)
    if not isinstance(flow, Flow):
        found = "nothing" if flow is None else type(flow).__name__
        raise ConfigError(
            f"entry point {entry_point!r} must name a tideflow Flow, but {module_name}.{attribute} "
            f"is {found}"
        )
    return flow
