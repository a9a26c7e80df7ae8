"""The local stack's event type, under BuildFlow's names.

``from tideflow.types.local import FileChangeEvent`` (as BuildFlow's local walkthrough
imports it) and ``LocalFileChangeEvent`` both work.
"""

from __future__ import annotations

import dataclasses
import enum

from tideflow.types import FileChangeEvent


class FileChangeStreamEventType(enum.Enum):
    """BuildFlow's local event kinds; tideflow's local streams deliver ``CREATED`` (a file
    created or replaced)."""

    CREATED = "added"
    DELETED = "deleted"
    MODIFIED = "modified"


@dataclasses.dataclass(frozen=True)
class LocalFileChangeEvent(FileChangeEvent):
    """A file was created or replaced in a local bucket folder.

    ``generation`` is the journal's number for this write (the version, as an int).
    From a BuildFlow-style stream (``LocalFileChangeStream(file_path=...)``)
    ``file_path`` is the file's full path and ``metadata["src_path"]`` too, as in BuildFlow.
    """

    @property
    def generation(self) -> int:
        return int(self.version)

    @property
    def event_type(self) -> FileChangeStreamEventType:
        """BuildFlow's ``event_type``: always ``CREATED``."""
        return FileChangeStreamEventType.CREATED


__all__ = ["FileChangeEvent", "FileChangeStreamEventType", "LocalFileChangeEvent"]
