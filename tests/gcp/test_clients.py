"""Project, credentials and endpoint settings from the environment (``GcpSettings``)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.credentials import AnonymousCredentials

from tideflow.exceptions import ConfigError
from tideflow.io.gcp import clients
from tideflow.io.gcp.settings import GcpSettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "GCP_PROJECT_ID",
        "GOOGLE_CLOUD_PROJECT",
        "GCP_SERVICE_ACCOUNT_INFO",
        "STORAGE_EMULATOR_HOST",
        "PUBSUB_EMULATOR_HOST",
        "BIGQUERY_EMULATOR_HOST",
    ):
        monkeypatch.delenv(name, raising=False)


def test_the_project_comes_from_the_argument_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError, match="GCP_PROJECT_ID"):
        GcpSettings.from_environ().project()
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "fallback")
    assert GcpSettings.from_environ().project() == "fallback"
    monkeypatch.setenv("GCP_PROJECT_ID", "mine")
    assert GcpSettings.from_environ().project() == "mine"
    assert GcpSettings.from_environ().project("explicit") == "explicit"


def test_emulators_get_anonymous_credentials() -> None:
    assert isinstance(clients.credentials(emulated=True), AnonymousCredentials)


def test_without_a_service_account_the_libraries_use_adc() -> None:
    assert clients.credentials(emulated=False) is None


def test_a_broken_service_account_is_reported_without_its_content(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GCP_SERVICE_ACCOUNT_INFO", '{"private_key": "SECRET-VALUE"}')
    with pytest.raises(ConfigError, match="GCP_SERVICE_ACCOUNT_INFO") as caught:
        clients.credentials(emulated=False)
    assert "SECRET-VALUE" not in str(caught.value)
    monkeypatch.setenv("GCP_SERVICE_ACCOUNT_INFO", "not json")
    with pytest.raises(ConfigError, match="JSON"):
        clients.credentials(emulated=False)


def test_the_bigquery_endpoint_can_point_at_an_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9050")
    client = clients.bigquery_client("p")
    assert client._connection.API_BASE_URL == "http://127.0.0.1:9050"
    assert isinstance(client._credentials, AnonymousCredentials)


def test_the_storage_endpoint_can_point_at_an_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9023")
    client = clients.storage_client("p")
    assert client._connection.API_BASE_URL == "http://127.0.0.1:9023"


def test_pubsub_clients_follow_the_emulator_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085")
    publisher = clients.publisher_client()
    assert "127.0.0.1:8085" in publisher._target
    subscriber = clients.subscriber_client()
    assert "127.0.0.1:8085" in subscriber._target
    subscriber.close()


def test_a_service_account_key_is_used_when_given(monkeypatch: pytest.MonkeyPatch) -> None:
    # A throwaway key made here: no key material lives in the repository.
    pem = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key = json.dumps(
        {
            "type": "service_account",
            "project_id": "p",
            "private_key_id": "1",
            "private_key": pem.decode(),
            "client_email": "app@p.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )
    monkeypatch.setenv("GCP_SERVICE_ACCOUNT_INFO", key)
    found = clients.credentials(emulated=False)
    assert found is not None
    assert found.service_account_email == "app@p.iam.gserviceaccount.com"  # type: ignore[attr-defined]
