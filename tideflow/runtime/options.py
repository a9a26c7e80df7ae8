"""What ``tideflow run`` is asked to do; light, so the command line builds it without
importing the runtime."""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path


class RunPart(enum.StrEnum):
    """``--only``: one part of the flow in this process (the other runs elsewhere)."""

    SERVICE = "service"
    CONSUMERS = "consumers"


@dataclasses.dataclass(frozen=True)
class RunOptions:
    entry_point: str
    project_dir: Path
    home: Path
    host: str = "127.0.0.1"
    port: int = 8000
    replicas: int | None = None
    only: RunPart | None = None
    log_level: str = "INFO"
    event_timeout: float = 300.0
