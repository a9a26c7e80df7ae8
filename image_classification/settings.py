"""The app's settings, read once from the environment and ``.env`` (see ``template.env``).

Environment variables win over ``.env``; an empty value, in either, means "use the default"
(so an empty environment variable also overrides a value in ``.env``). A bad value stops the
app at start with one ``ConfigError`` line that names the setting.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from image_classification.model import ENGINES, MODELS, WeightsNotFoundError
from image_classification.model.registry import get_spec
from image_classification.model.weights import resolve_weights
from tideflow.exceptions import ConfigError

Stack = Literal["local", "gcp", "aws"]

# Settings whose value must never be echoed back in an error message.
_SECRETS = frozenset({"api_token", "gcp_service_account_info"})
_MIN_TOKEN_LENGTH = 8


class Settings(BaseSettings):
    """Every setting, with its default; the names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # Chosen by `tideflow --stack` (the CLI sets STACK for the app and its replicas).
    stack: Stack = "local"
    model: str = "efficientnet_lite0"
    engine: str = "onnxruntime"
    model_path: Path | None = None
    num_replicas: int | None = Field(default=None, ge=1, le=64)
    model_threads: int | None = Field(default=None, ge=1, le=256)
    max_upload_mb: int = Field(default=20, ge=1, le=1024)
    top_k: int = Field(default=5, ge=1, le=20)
    api_token: SecretStr | None = None
    gcp_project_id: str | None = None
    gcs_bucket_name: str | None = None
    bigquery_dataset: str = "image_classification"
    bigquery_table: str = "image_classification"
    gcp_service_account_info: SecretStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return {name: value for name, value in values.items() if value != ""}
        return values

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value.lower().endswith(".onnx"):
            if not Path(value).expanduser().is_file():
                raise ValueError("the custom .onnx model file does not exist")
            return value
        name = value.strip().lower().replace("-", "_")
        if name not in MODELS:
            raise ValueError(f"unknown model; use one of {', '.join(MODELS)} or an .onnx path")
        return name

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        name = value.strip().lower()
        if name not in ENGINES:
            raise ValueError(f"unknown engine; use one of {', '.join(ENGINES)}")
        return name

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
    def _stack_needs(self) -> Settings:
        if self.stack == "gcp" and not self.gcp_project_id:
            raise ValueError("GCP_PROJECT_ID is required when STACK=gcp")
        return self

    @model_validator(mode="after")
    def _model_can_load(self) -> Settings:
        # Checked here, in a millisecond, so that a missing weights file stops the app at
        # start with one line instead of failing every replica with a traceback.
        if self.model.lower().endswith(".onnx"):
            if self.engine != "onnxruntime":
                raise ValueError(f"ENGINE={self.engine!r}: a custom .onnx model needs onnxruntime")
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
        return None if MODELS[self.model].packaged_weights else self.model_path

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

    @property
    def gcs_bucket(self) -> str:
        return self.gcs_bucket_name or f"{self.gcp_project_id}-image-bucket"


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
