"""The local stack's settings, read from the environment once, by ``LocalStack``.

- ``TIDEFLOW_JOURNAL_RETENTION_DAYS`` (default 7): how long done events stay in the
  journal; a value that is not a number keeps the default, a negative one is 0.

Everything else lives in the stack's state directory (``TIDEFLOW_HOME``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from tideflow.io.settings import env_text

DEFAULT_RETENTION_DAYS = 7.0


@dataclasses.dataclass(frozen=True)
class LocalSettings:
    journal_retention_days: float = DEFAULT_RETENTION_DAYS

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> LocalSettings:
        text = env_text(environ, "TIDEFLOW_JOURNAL_RETENTION_DAYS")
        try:
            days = float(text) if text else DEFAULT_RETENTION_DAYS
        except ValueError:
            days = DEFAULT_RETENTION_DAYS
        return cls(journal_retention_days=max(days, 0.0))

    @property
    def journal_retention_seconds(self) -> float:
        return self.journal_retention_days * 86400
