"""tideflow: BuildFlow-style flows of primitives, a service and consumers.

```python
from tideflow import Flow, FlowOptions, Router, Service, consumer, dependency, Scope
```

From a script, ``tideflow.open_project()`` opens a project's tables and dead letters
(through the running app while ``tideflow run`` holds them).

The names are imported on first use (PEP 562), so that commands such as ``tideflow
status`` start without importing the web framework.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tideflow.consumers import Consumer, consumer
    from tideflow.dependencies import Scope, dependency
    from tideflow.flow import Flow, FlowOptions
    from tideflow.project import Project, open_project
    from tideflow.service import Router, Service

__version__ = "0.1.0"

_EXPORTS = {
    "Consumer": "tideflow.consumers",
    "consumer": "tideflow.consumers",
    "Scope": "tideflow.dependencies",
    "dependency": "tideflow.dependencies",
    "Flow": "tideflow.flow",
    "FlowOptions": "tideflow.flow",
    "Project": "tideflow.project",
    "open_project": "tideflow.project",
    "Router": "tideflow.service",
    "Service": "tideflow.service",
}

__all__ = [
    "Consumer",
    "Flow",
    "FlowOptions",
    "Project",
    "Router",
    "Scope",
    "Service",
    "consumer",
    "dependency",
    "open_project",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
