"""Google Cloud clients built from the gcp stack's settings (``tideflow.io.gcp.settings``).

Clients are created on first use, never at import. A client whose endpoint is an
emulator uses anonymous credentials, so tests against emulators on loopback need no
account; otherwise the service-account key in the settings, else Application Default
Credentials. The storage and Pub/Sub libraries follow ``STORAGE_EMULATOR_HOST`` and
``PUBSUB_EMULATOR_HOST`` themselves; the BigQuery client is pointed at the settings'
emulator. Each function reads the environment's settings when it is given none.
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
from tideflow.io.gcp.settings import SERVICE_ACCOUNT_ENV, GcpSettings

_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


def credentials(*, emulated: bool, settings: GcpSettings | None = None) -> Credentials | None:
    """Anonymous for emulators, the settings' service account, or None (ADC)."""
    if emulated:
        return AnonymousCredentials()
    info = (settings or GcpSettings.from_environ()).service_account_info
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


_storage_clients: dict[tuple[int, str, str, str], storage.Client] = {}
_storage_lock = threading.Lock()


def storage_client(project: str, settings: GcpSettings | None = None) -> storage.Client:
    """One storage client per process and settings (connections and tokens are reused).

    Events carry their bucket to replica processes pickled without a client; each
    replica then builds one client, not one per event or batch.
    """
    settings = settings or GcpSettings.from_environ()
    endpoint = settings.storage_emulator_host
    key = (os.getpid(), project, endpoint, settings.service_account_info)
    with _storage_lock:
        client = _storage_clients.get(key)
        if client is None:
            client = storage.Client(
                project=project,
                credentials=credentials(emulated=bool(endpoint), settings=settings),
            )
            _storage_clients[key] = client
        return client


def bigquery_client(project: str, settings: GcpSettings | None = None) -> bigquery.Client:
    settings = settings or GcpSettings.from_environ()
    endpoint = settings.bigquery_endpoint
    return bigquery.Client(
        project=project,
        credentials=credentials(emulated=endpoint is not None, settings=settings),
        client_options=ClientOptions(api_endpoint=endpoint) if endpoint else None,
    )


def publisher_client(settings: GcpSettings | None = None) -> pubsub_v1.PublisherClient:
    settings = settings or GcpSettings.from_environ()
    # Under PUBSUB_EMULATOR_HOST the library sets the endpoint and anonymous credentials.
    if settings.pubsub_emulator_host:
        return pubsub_v1.PublisherClient()
    return pubsub_v1.PublisherClient(credentials=credentials(emulated=False, settings=settings))


def subscriber_client(settings: GcpSettings | None = None) -> pubsub_v1.SubscriberClient:
    settings = settings or GcpSettings.from_environ()
    if settings.pubsub_emulator_host:
        return pubsub_v1.SubscriberClient()
    return pubsub_v1.SubscriberClient(credentials=credentials(emulated=False, settings=settings))
