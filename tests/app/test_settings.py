"""Settings: defaults, empty values, and one clear error naming a bad setting."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from image_classification.settings import Settings, get_settings
from tideflow.exceptions import ConfigError


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)  # no .env here
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_defaults() -> None:
    settings = get_settings()
    assert settings.stack == "local"
    assert (settings.model, settings.engine) == ("efficientnet_lite0", "onnxruntime")
    assert (settings.max_upload_mb, settings.top_k) == (20, 5)
    assert settings.api_token is None
    assert settings.threads_per_model >= 1


def test_dotenv_is_read_and_empty_environment_values_mean_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("MAX_UPLOAD_MB=7\nAPI_TOKEN=from-dotenv-123\nMODEL_PATH=\n")
    monkeypatch.setenv("API_TOKEN", "")
    settings = get_settings()
    assert settings.max_upload_mb == 7
    assert settings.api_token is None
    assert settings.model_path is None


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MAX_UPLOAD_MB", "abc", "MAX_UPLOAD_MB='abc'"),
        ("TOP_K", "0", "TOP_K='0'"),
        ("MODEL", "alexnet", "MODEL='alexnet': Unknown model 'alexnet'. Known models:"),
        ("ENGINE", "tensorflow", "ENGINE='tensorflow': Unknown engine 'tensorflow'. Choose"),
        ("STACK", "gpc", "STACK='gpc': no such stack 'gpc'; did you mean 'gcp'?"),
        ("NUM_REPLICAS", "-1", "NUM_REPLICAS='-1'"),
        ("MAX_REPLICAS", "0", "MAX_REPLICAS='0'"),
        ("AUTOSCALE_FREQUENCY_S", "0", "AUTOSCALE_FREQUENCY_S='0'"),
        ("AUTOSCALE_BACKLOG_BURN_S", "soon", "AUTOSCALE_BACKLOG_BURN_S='soon'"),
        ("AUTOSCALE_CPU_TARGET", "150", "AUTOSCALE_CPU_TARGET='150'"),
        ("MODEL_PATH", "/no/such/weights.pth", "MODEL_PATH="),
    ],
)
def test_a_bad_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="invalid setting") as raised:
        get_settings()
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"MIN_REPLICAS": "3", "MAX_REPLICAS": "2"}, "MAX_REPLICAS=2 is below MIN_REPLICAS=3"),
        ({"NUM_REPLICAS": "5", "MAX_REPLICAS": "4"}, "NUM_REPLICAS=5 is above MAX_REPLICAS=4"),
        ({"NUM_REPLICAS": "1", "MIN_REPLICAS": "2"}, "NUM_REPLICAS=1 is below MIN_REPLICAS=2"),
    ],
)
def test_replica_settings_must_agree(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, str], expected: str
) -> None:
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="invalid setting") as raised:
        get_settings()
    assert expected in str(raised.value) and "\n" not in str(raised.value)


def test_autoscaling_settings_default_to_unset() -> None:
    settings = get_settings()
    autoscaling = (
        settings.min_replicas,
        settings.max_replicas,
        settings.autoscale_frequency_s,
        settings.autoscale_backlog_burn_s,
        settings.autoscale_cpu_target,
    )
    assert autoscaling == (None, None, None, None, None)  # the consumer's defaults: fixed


def test_a_bad_token_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_TOKEN", "short")
    with pytest.raises(ConfigError) as raised:
        get_settings()
    assert "API_TOKEN=***" in str(raised.value)
    assert "short" not in str(raised.value)


def test_models_and_engines_take_the_model_registrys_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # One list: the spellings the classifier accepts (ImageAI's included) are the settings'.
    (tmp_path / "mobilenet_v2-b0353104.pth").write_bytes(b"placed by the user")
    monkeypatch.setenv("MODEL", "MobileNetV2")
    monkeypatch.setenv("MODEL_PATH", str(tmp_path))
    monkeypatch.setenv("ENGINE", "pytorch")
    settings = get_settings()
    assert (settings.model, settings.engine) == ("mobilenet_v2", "torch")


def test_threads_share_the_cores_among_replicas() -> None:
    assert Settings(num_replicas=1, model_threads=None).threads_per_model >= 1
    assert Settings(model_threads=3).threads_per_model == 3
    assert Settings(num_replicas=64).threads_per_model == 1


def test_a_missing_weights_file_is_reported_at_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODEL", "mobilenet_v2")
    monkeypatch.setenv("MODEL_PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=r"MODEL='mobilenet_v2': .*download mobilenet_v2"):
        get_settings()
    (tmp_path / "mobilenet_v2-b0353104.pth").write_bytes(b"placed by the user")
    get_settings.cache_clear()
    assert get_settings().weights_path == tmp_path


def test_model_path_is_ignored_for_packaged_weights(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODEL_PATH", str(tmp_path))
    assert get_settings().weights_path is None


def test_imageai_runs_imageai_models_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGINE", "imageai")
    with pytest.raises(ConfigError, match="ImageAI's model types only"):
        get_settings()
