"""The gcp stack's settings, read from the environment once, by ``GcpStack``.

``GcpSettings.from_environ()`` reads every variable the gcp stack knows (the CLI has
loaded the project's ``.env``); the stack passes the one object to every primitive it
builds, and they pass it on to their clients. A primitive made directly (BuildFlow style,
``GCSBucket(bucket_name=...)``) reads its own when it is made.

- ``GCP_PROJECT_ID`` (else ``GOOGLE_CLOUD_PROJECT``, else the service-account key's
  ``project_id``, else the project of Application Default Credentials, read from their
  files: ``CLOUDSDK_CORE_PROJECT``, the key file in ``GOOGLE_APPLICATION_CREDENTIALS``, or
  gcloud's application-default login; never the metadata server, nor under an emulator);
- ``GCP_SERVICE_ACCOUNT_INFO``: a service-account key as JSON text; without it the
  clients use Application Default Credentials;
- ``STORAGE_EMULATOR_HOST``, ``PUBSUB_EMULATOR_HOST`` (the client libraries read these
  two themselves too) and ``BIGQUERY_EMULATOR_HOST``: emulator endpoints; a client whose
  endpoint is an emulator uses anonymous credentials;
- ``GCS_BUCKET_NAME`` (default ``<project>-<bucket name>``), ``BIGQUERY_DATASET`` and
  ``BIGQUERY_TABLE`` (default: the names the app passes);
- ``PUBSUB_ACK_DEADLINE`` (default 60, 10 to 600): seconds a pulled event stays leased.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping

from tideflow.exceptions import ConfigError
from tideflow.io.settings import env_seconds, env_text

PROJECT_ENV = "GCP_PROJECT_ID"
FALLBACK_PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
SERVICE_ACCOUNT_ENV = "GCP_SERVICE_ACCOUNT_INFO"
STORAGE_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
PUBSUB_EMULATOR_ENV = "PUBSUB_EMULATOR_HOST"
BIGQUERY_EMULATOR_ENV = "BIGQUERY_EMULATOR_HOST"


@dataclasses.dataclass(frozen=True)
class GcpSettings:
    project_id: str | None = None
    service_account_info: str = dataclasses.field(default="", repr=False)  # a private key
    storage_emulator_host: str = ""
    pubsub_emulator_host: str = ""
    bigquery_emulator_host: str = ""
    bucket_name: str | None = None
    dataset_name: str | None = None
    table_name: str | None = None
    ack_deadline_seconds: float = 60.0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> GcpSettings:
        info = environ.get(SERVICE_ACCOUNT_ENV, "").strip()
        storage = environ.get(STORAGE_EMULATOR_ENV, "").strip()
        pubsub = environ.get(PUBSUB_EMULATOR_ENV, "").strip()
        project = (
            env_text(environ, PROJECT_ENV)
            or env_text(environ, FALLBACK_PROJECT_ENV)
            or _key_project(info)
            or (None if storage or pubsub else _adc_project(environ))
        )
        return cls(
            project_id=project,
            service_account_info=info,
            storage_emulator_host=storage,
            pubsub_emulator_host=pubsub,
            bigquery_emulator_host=environ.get(BIGQUERY_EMULATOR_ENV, "").strip(),
            bucket_name=env_text(environ, "GCS_BUCKET_NAME"),
            dataset_name=env_text(environ, "BIGQUERY_DATASET"),
            table_name=env_text(environ, "BIGQUERY_TABLE"),
            ack_deadline_seconds=env_seconds(environ, "PUBSUB_ACK_DEADLINE", 60.0),
        )

    def project(self, given: str | None = None) -> str:
        """``given``, else the project the settings name; ``ConfigError`` without one."""
        project = given or self.project_id
        if not project:
            raise ConfigError(
                f"{PROJECT_ENV} is required (in .env or the environment) unless the "
                "credentials name a project (a service-account key, or `gcloud auth "
                "application-default login` with a quota project)"
            )
        return project

    @property
    def bigquery_endpoint(self) -> str | None:
        """The BigQuery emulator's URL; None for Google's own endpoint."""
        host = self.bigquery_emulator_host
        if not host:
            return None
        return host if "://" in host else f"http://{host}"


def _key_project(info: str) -> str | None:
    try:
        parsed = json.loads(info or "{}")
    except ValueError:
        return None  # credentials() says what is wrong with it.
    project = parsed.get("project_id") if isinstance(parsed, dict) else None
    return str(project) if project else None


def _adc_project(environ: Mapping[str, str]) -> str | None:
    """The project Application Default Credentials name, from their files only."""
    if environ.get("CLOUDSDK_CORE_PROJECT"):
        return environ["CLOUDSDK_CORE_PROJECT"]
    config = environ.get("CLOUDSDK_CONFIG") or os.path.expanduser("~/.config/gcloud")
    candidates = [
        environ.get("GOOGLE_APPLICATION_CREDENTIALS", ""),
        os.path.join(config, "application_default_credentials.json"),
    ]
    for path in candidates:
        try:
            with open(path, encoding="utf-8") as handle:
                info = json.load(handle)
        except (OSError, ValueError):
            continue
        if isinstance(info, dict):
            project = info.get("project_id") or info.get("quota_project_id")
            if project:
                return str(project)
    return None
