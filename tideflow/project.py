"""A project as commands and scripts open it: its flow, tables and dead letters on a stack.

```python
import tideflow

project = tideflow.open_project()          # ./buildflow.yaml, $STACK or the first stack
rows = project.table().select(limit=10)    # the only consumer's table
letters = project.dead_letters("count_words").list()
```

Opening a project does what every ``tideflow`` command does first: it loads the
project's ``.env`` (the real environment wins), picks the stack and sets ``STACK`` and
``TIDEFLOW_HOME`` for the flow it imports. Then it looks, once, for a ``tideflow run``
of that stack: while one runs, tables and dead letters are read through its admin
socket (DuckDB lets only that process open the warehouse file), otherwise here; the
readers are the same interfaces either way (``tideflow.runtime.access``).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dotenv import load_dotenv

from tideflow.config import load_config
from tideflow.exceptions import ConfigError
from tideflow.runtime.access import FlowAccess, LocalAccess, StatusRow
from tideflow.runtime.admin_client import AdminClient, RemoteAccess
from tideflow.runtime.lock import running_info

# The flow (and with it FastAPI and the provider SDKs) is imported on first use:
# `tideflow status` asks a running app and stays fast.
if TYPE_CHECKING:
    from tideflow.consumers import Consumer
    from tideflow.flow import Flow
    from tideflow.io.strategies import DeadLetterQueue, TableReader


def open_project(path: str | os.PathLike[str] = ".", *, stack: str | None = None) -> Project:
    """The project whose ``buildflow.yaml`` is in ``path``, on ``stack`` (else ``$STACK``,
    else the first one it lists)."""
    return Project(Path(path), stack=stack)


class Project:
    """A project on one stack; see the module's docstring."""

    def __init__(self, path: Path, *, stack: str | None = None) -> None:
        self.config = load_config(path)
        load_dotenv(self.config.project_dir / ".env", override=False)
        self.stack = self.config.stack(stack)
        self.home = self.config.activate(self.stack)
        # What the running `tideflow run` of this stack published (None: not running).
        self._run_info: dict[str, Any] | None = running_info(self.home)
        socket = (self._run_info or {}).get("admin_socket")
        self._remote = RemoteAccess(AdminClient(Path(socket))) if socket else None

    @property
    def is_running(self) -> bool:
        """Whether a ``tideflow run`` of this stack was running when the project opened."""
        return self._run_info is not None

    @functools.cached_property
    def flow(self) -> Flow:
        """The flow, imported from the entry point."""
        from tideflow.runtime.loader import load_flow

        return load_flow(self.config.entry_point, self.config.project_dir)

    @functools.cached_property
    def access(self) -> FlowAccess:
        """Where reads run: through the running app, or in this process."""
        return self._remote or LocalAccess(self.flow)

    def consumers(self) -> list[Consumer]:
        if not self.flow.consumers:
            raise ConfigError(
                "the flow has no consumers: no stream, table or dead letters to work on"
            )
        return self.flow.consumers

    def consumer(self, name: str | None = None) -> Consumer:
        """The consumer called ``name``; without a name, the flow's only one."""
        consumers = self.consumers()
        if name is None and len(consumers) == 1:
            return consumers[0]
        for candidate in consumers:
            if candidate.name == name:
                return candidate
        names = ", ".join(c.name for c in consumers)
        if name is None:
            raise ConfigError(
                f"the flow has {len(consumers)} consumers ({names}): say which one "
                "(--consumer NAME; consumer=NAME from Python)"
            )
        raise ConfigError(f"the flow has no consumer named {name!r}; its consumers: {names}")

    def table(self, consumer: str | None = None, *, name: str | None = None) -> TableReader:
        """The table that ``consumer`` writes (the only consumer's by default), or the
        flow's table called ``name`` (one it manages, or a consumer's failure log)."""
        if name is not None and consumer is not None:
            raise ConfigError("name a consumer or a table, not both")
        return self.access.table(name or self.consumer(consumer).sink.table_name)

    def dead_letters(self, consumer: str | None = None) -> DeadLetterQueue:
        """The dead letters of ``consumer`` (the only consumer's by default); ``retry``
        sends them back for delivery and marks them retried in its failure log."""
        return self.access.dead_letters(self.consumer(consumer).name)

    def status(self) -> list[StatusRow]:
        """Per consumer: pending, in flight and done (None where the queue cannot tell),
        and failed. Through a running app, without importing the flow."""
        return self.access.status()
