"""The app's settings, read once from the environment and ``.env`` (see ``template.env``).

Environment variables win over ``.env``; an empty value, in either, means "use the default"
(so an empty environment variable also overrides a value in ``.env``). A bad value stops the
app at start with one ``ConfigError`` line that names the setting.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from image_classification.model import MODELS, ConfigurationError, WeightsNotFoundError
from image_classification.model.loader import is_custom_model
from image_classification.model.registry import check_engine, get_spec
from image_classification.model.weights import resolve_weights
from tideflow.exceptions import ConfigError
from tideflow.stacks import PROVIDERS, get_stack

# Settings whose value must never be echoed back in an error message.
_SECRETS = frozenset({"api_token"})
_MIN_TOKEN_LENGTH = 8


class Settings(BaseSettings):
    """Every setting of the app, with its default; the names are the environment variables,
    upper-cased. Each stack's provider reads its own settings (GCP_*, AWS_*, ...)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # Chosen by `tideflow --stack` (the CLI sets STACK for the app and its replicas).
    stack: str = "local"
    model: str = "efficientnet_lite0"
    engine: str = "onnxruntime"
    model_path: Path | None = None
    num_replicas: int | None = Field(default=None, ge=1, le=64)
    # BuildFlow's autoscaler (tideflow/runtime/autoscaler.py): on when MAX_REPLICAS is above
    # MIN_REPLICAS; NUM_REPLICAS is then the start (default MIN_REPLICAS).
    min_replicas: int | None = Field(default=None, ge=1, le=64)
    max_replicas: int | None = Field(default=None, ge=1, le=64)
    autoscale_frequency_s: float | None = Field(default=None, gt=0, le=3600)
    autoscale_backlog_burn_s: float | None = Field(default=None, gt=0, le=86400)
    autoscale_cpu_target: float | None = Field(default=None, gt=0, le=100)
    model_threads: int | None = Field(default=None, ge=1, le=256)
    max_upload_mb: int = Field(default=20, ge=1, le=1024)
    top_k: int = Field(default=5, ge=1, le=20)
    # Adaptive batching in each replica (TorchServe's batch_size / max_batch_delay): up to
    # batch_size images decoded in parallel threads, then one inference call; 1 turns it off.
    batch_size: int = Field(default=1, ge=1, le=64)
    batch_max_delay_ms: float = Field(default=10.0, ge=0, le=1000)
    # /classify decodes in the HTTP (run) process: bound what it may decode, and how many
    # at once (see processors/classify_guard.py).
    classify_max_pixels: int = Field(default=12_000_000, ge=50_000, le=89_478_485)
    classify_concurrency: int = Field(default=2, ge=1, le=32)
    api_token: SecretStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return {name: value for name, value in values.items() if value != ""}
        return values

    @field_validator("stack")
    @classmethod
    def _known_stack(cls, value: str) -> str:
        if value not in PROVIDERS:
            try:
                get_stack(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if is_custom_model(value):
            if not Path(value).expanduser().is_file():
                raise ValueError("the custom model file does not exist")
            return value
        try:
            return get_spec(value).name  # the model registry's names and aliases, one list
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        try:
            return check_engine(value)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("model_path")
    @classmethod
    def _existing_path(cls, value: Path | None) -> Path | None:
        if value is not None and not value.expanduser().exists():
            raise ValueError("no such file or folder")
        return value

    @field_validator("api_token")
    @classmethod
    def _usable_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value()
        if len(token) < _MIN_TOKEN_LENGTH or token != token.strip():
            raise ValueError(
                f"must be at least {_MIN_TOKEN_LENGTH} characters, without surrounding spaces"
            )
        return value

    @model_validator(mode="after")
    def _replicas_in_range(self) -> Settings:
        low, high, start = self.min_replicas or 1, self.max_replicas, self.num_replicas
        if high is not None and high < low:
            raise ValueError(f"MAX_REPLICAS={high} is below MIN_REPLICAS={low}")
        if start is not None and start < low:
            raise ValueError(f"NUM_REPLICAS={start} is below MIN_REPLICAS={low}")
        if start is not None and high is not None and start > high:
            raise ValueError(f"NUM_REPLICAS={start} is above MAX_REPLICAS={high}")
        return self

    @model_validator(mode="after")
    def _model_can_load(self) -> Settings:
        # Checked here, in a millisecond, so that a missing weights file stops the app at
        # start with one line instead of failing every replica with a traceback.
        if is_custom_model(self.model):
            if self.engine != "onnxruntime":
                raise ValueError(f"ENGINE={self.engine!r}: a custom model file needs onnxruntime")
            return self
        spec = get_spec(self.model)
        if self.engine == "imageai" and spec.imageai_setter is None:
            raise ValueError(
                f"ENGINE='imageai' runs ImageAI's model types only, not MODEL={self.model!r}"
            )
        try:
            resolve_weights(spec, self.weights_path)
        except WeightsNotFoundError as exc:
            raise ValueError(f"MODEL={self.model!r}: {exc}") from None
        return self

    @property
    def weights_path(self) -> Path | None:
        """MODEL_PATH, except for models whose weights come in a package (it is ignored)."""
        if is_custom_model(self.model) or MODELS[self.model].packaged_weights:
            return None
        return self.model_path

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def threads_per_model(self) -> int:
        """MODEL_THREADS, else the cores shared out among the replicas (at least one each).

        Inside a replica, tideflow says how many replicas really run (``--replicas`` included).
        """
        if self.model_threads is not None:
            return self.model_threads
        cpus = len(os.sched_getaffinity(0))
        replicas = int(os.environ.get("TIDEFLOW_REPLICAS", 0)) or self.num_replicas or cpus
        return max(1, cpus // replicas)


@functools.cache
def get_settings() -> Settings:
    """The settings of this process; raises ``ConfigError`` naming every bad setting."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise ConfigError(
            f"invalid setting (fix it in .env or the environment; see template.env): {problems}"
        ) from None


def _describe(error: ErrorDetails) -> str:
    message = error["msg"].removeprefix("Value error, ")
    if not error["loc"]:
        return message
    name = str(error["loc"][0])
    shown = "***" if name in _SECRETS else repr(error["input"])
    return f"{name.upper()}={shown}: {message}"
