"""Google Cloud clients built from the environment: project, credentials, endpoints.

Settings (environment variables):

- ``GCP_PROJECT_ID`` (else ``GOOGLE_CLOUD_PROJECT``): the project a primitive uses when
  it is not given ``project_id``.
- ``GCP_SERVICE_ACCOUNT_INFO``: a service-account key as JSON text. Without it the
  clients use Application Default Credentials (``gcloud auth application-default login``,
  ``GOOGLE_APPLICATION_CREDENTIALS``, or the metadata server on Google Cloud).
- ``STORAGE_EMULATOR_HOST``: Cloud Storage endpoint, e.g. ``http://127.0.0.1:9023``
  (read by google-cloud-storage itself).
- ``PUBSUB_EMULATOR_HOST``: Pub/Sub endpoint, e.g. ``127.0.0.1:8085`` (read by
  google-cloud-pubsub itself; plain gRPC).
- ``BIGQUERY_EMULATOR_HOST``: BigQuery REST endpoint, e.g. ``http://127.0.0.1:9050``.

A client whose endpoint is overridden uses anonymous credentials, so tests against
emulators on loopback need no account. Clients are created on first use, never at import.
"""

from __future__ import annotations

import json
import os
import threading

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import bigquery, pubsub_v1, storage  # type: ignore[attr-defined]
from google.oauth2 import service_account

from tideflow.exceptions import ConfigError

PROJECT_ENV = "GCP_PROJECT_ID"
FALLBACK_PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
SERVICE_ACCOUNT_ENV = "GCP_SERVICE_ACCOUNT_INFO"
STORAGE_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
PUBSUB_EMULATOR_ENV = "PUBSUB_EMULATOR_HOST"
BIGQUERY_EMULATOR_ENV = "BIGQUERY_EMULATOR_HOST"

_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


def resolve_project(project_id: str | None) -> str:
    """``project_id``, else ``GCP_PROJECT_ID``/``GOOGLE_CLOUD_PROJECT``, else the service
    account key's ``project_id``, else the project of Application Default Credentials."""
    project = (
        project_id
        or os.environ.get(PROJECT_ENV)
        or os.environ.get(FALLBACK_PROJECT_ENV)
        or _key_project()
        or _adc_project()
    )
    if not project:
        raise ConfigError(
            f"{PROJECT_ENV} is required (in .env or the environment) unless the credentials "
            "name a project (a service-account key, or `gcloud auth application-default "
            "login` with a quota project)"
        )
    return project


def _key_project() -> str | None:
    try:
        info = json.loads(os.environ.get(SERVICE_ACCOUNT_ENV, "").strip() or "{}")
    except ValueError:
        return None  # credentials() says what is wrong with it.
    project = info.get("project_id") if isinstance(info, dict) else None
    return str(project) if project else None


def _adc_project() -> str | None:
    """The project Application Default Credentials name, from their files only.

    The key file in ``GOOGLE_APPLICATION_CREDENTIALS`` (``project_id``), else
    ``CLOUDSDK_CORE_PROJECT``, else gcloud's application-default login
    (``quota_project_id``). The metadata server is not asked (on Google Cloud,
    ``GOOGLE_CLOUD_PROJECT`` is usually set); nor is anything under an emulator.
    """
    if any(os.environ.get(v) for v in (STORAGE_EMULATOR_ENV, PUBSUB_EMULATOR_ENV)):
        return None
    candidates = [os.environ.get("GOOGLE_APPLICATION_CREDENTIALS", "")]
    if os.environ.get("CLOUDSDK_CORE_PROJECT"):
        return os.environ["CLOUDSDK_CORE_PROJECT"]
    config = os.environ.get("CLOUDSDK_CONFIG") or os.path.expanduser("~/.config/gcloud")
    candidates.append(os.path.join(config, "application_default_credentials.json"))
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


def credentials(*, emulated: bool) -> Credentials | None:
    """Anonymous for emulators, the service account from the environment, or None (ADC)."""
    if emulated:
        return AnonymousCredentials()
    info = os.environ.get(SERVICE_ACCOUNT_ENV, "").strip()
    if not info:
        return None
    try:
        parsed = json.loads(info)
        return service_account.Credentials.from_service_account_info(parsed, scopes=_SCOPES)
    except (ValueError, KeyError, TypeError) as exc:
        # Never echo the value: it is a private key.
        raise ConfigError(
            f"{SERVICE_ACCOUNT_ENV} is not a service-account key in JSON form "
            f"({type(exc).__name__}); paste the whole key file's content"
        ) from exc


def _endpoint(variable: str) -> str | None:
    host = os.environ.get(variable, "").strip()
    if not host:
        return None
    return host if "://" in host else f"http://{host}"


_storage_clients: dict[tuple[int, str, str, str], storage.Client] = {}
_storage_lock = threading.Lock()


def storage_client(project: str) -> storage.Client:
    """One storage client per process and settings (connections and tokens are reused).

    Events carry their bucket to replica processes pickled without a client; each
    replica then builds one client, not one per event or batch.
    """
    endpoint = os.environ.get(STORAGE_EMULATOR_ENV, "")
    key = (os.getpid(), project, endpoint, os.environ.get(SERVICE_ACCOUNT_ENV, ""))
    with _storage_lock:
        client = _storage_clients.get(key)
        if client is None:
            client = storage.Client(
                project=project, credentials=credentials(emulated=bool(endpoint))
            )
            _storage_clients[key] = client
        return client


def bigquery_client(project: str) -> bigquery.Client:
    endpoint = _endpoint(BIGQUERY_EMULATOR_ENV)
    return bigquery.Client(
        project=project,
        credentials=credentials(emulated=endpoint is not None),
        client_options=ClientOptions(api_endpoint=endpoint) if endpoint else None,
    )


def publisher_client() -> pubsub_v1.PublisherClient:
    # Under PUBSUB_EMULATOR_HOST the library sets the endpoint and anonymous credentials.
    if os.environ.get(PUBSUB_EMULATOR_ENV):
        return pubsub_v1.PublisherClient()
    return pubsub_v1.PublisherClient(credentials=credentials(emulated=False))


def subscriber_client() -> pubsub_v1.SubscriberClient:
    if os.environ.get(PUBSUB_EMULATOR_ENV):
        return pubsub_v1.SubscriberClient()
    return pubsub_v1.SubscriberClient(credentials=credentials(emulated=False))
