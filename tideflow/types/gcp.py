"""The gcp stack's event type, under BuildFlow's names (no Google SDK imported)."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from tideflow.types import FileChangeEvent


class GCSChangeStreamEventType(enum.Enum):
    """BuildFlow's Cloud Storage event kinds; tideflow's streams deliver ``OBJECT_FINALIZE``
    (an object created or replaced)."""

    OBJECT_FINALIZE = "created"
    OBJECT_DELETE = "deleted"
    OBJECT_ARCHIVE = "archive"
    OBJECT_METADATA_UPDATE = "metadata_update"


@dataclasses.dataclass(frozen=True)
class GCSFileChangeEvent(FileChangeEvent):
    """An object was created or replaced in a Cloud Storage bucket.

    ``metadata`` holds the object's custom metadata plus ``content_type``, as on the
    local stack; ``blob`` downloads exactly the notified generation, and
    ``generation`` is that generation as an int (the version).
    """

    @property
    def generation(self) -> int:
        return int(self.version)

    @property
    def event_type(self) -> GCSChangeStreamEventType:
        """BuildFlow's ``event_type``: always ``OBJECT_FINALIZE``."""
        return GCSChangeStreamEventType.OBJECT_FINALIZE

    @property
    def storage_client(self) -> Any:
        """BuildFlow's ``storage_client``: the google-cloud-storage ``Client`` of the bucket."""
        client = getattr(self.reader, "storage_client", None)
        if not callable(client):
            raise RuntimeError(f"event {self.event_id} carries no Cloud Storage bucket")
        return client()


__all__ = ["GCSChangeStreamEventType", "GCSFileChangeEvent"]
