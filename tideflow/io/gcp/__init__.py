"""The gcp stack: Cloud Storage, Storage notifications through Pub/Sub, and BigQuery.

Importing this package loads the Google client libraries; ``tideflow`` itself never
does, so the local stack needs none installed. Settings come from the environment, read
once into a ``GcpSettings`` (``tideflow.io.gcp.settings``); the emulators' variables point
the clients at loopback (see ``tideflow.io.gcp.stream`` for what apply does differently
under emulators).
"""

from tideflow.io.gcp.bigquery import BigQueryDataset, BigQueryTable
from tideflow.io.gcp.notifications import GCSFileChangeEvent
from tideflow.io.gcp.storage import GCSBucket
from tideflow.io.gcp.stream import GCSFileChangeStream

__all__ = [
    "BigQueryDataset",
    "BigQueryTable",
    "GCSBucket",
    "GCSFileChangeEvent",
    "GCSFileChangeStream",
]
