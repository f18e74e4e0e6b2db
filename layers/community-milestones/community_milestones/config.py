"""Settings read from the environment at start-up, one model per function."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from community_milestones.errors import ConfigurationError, describe

DEFAULT_PLATFORM_BASE_URL = "https://integration.returning.ai/apis/v1"
QUEUE_URL_PATTERN = r"^https?://\S+/\S+$"
SECRET_ID_PATTERN = r"^\S{1,2048}$"  # noqa: S105 - a pattern for secret names, not a secret


class Settings(BaseModel):
    """Base of the settings models: environment variable names are the field names in upper case."""

    model_config = ConfigDict(alias_generator=str.upper, frozen=True, extra="ignore")

    table_name: str = Field(pattern=r"^[A-Za-z0-9_.-]{3,255}$")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read the settings from `environ` (the process environment by default).

        Raises:
            ConfigurationError: naming every missing or invalid variable; values are never echoed.
        """
        source = os.environ if environ is None else environ
        try:
            return cls.model_validate(dict(source))
        except ValidationError as exc:
            raise ConfigurationError(f"invalid {cls.__name__} from the environment: {describe(exc)}") from None


class WebhookSettings(Settings):
    """Settings of the webhook function."""

    queue_url: str = Field(pattern=QUEUE_URL_PATTERN)
    webhook_key_secret_arn: str = Field(pattern=SECRET_ID_PATTERN)
    secret_max_age_seconds: int = Field(default=300, ge=0, le=86_400)


class WorkerSettings(Settings):
    """Settings of the worker function."""

    api_token_secret_arn: str = Field(pattern=SECRET_ID_PATTERN)
    dead_letter_queue_url: str = Field(pattern=QUEUE_URL_PATTERN)
    queue_url: str | None = Field(default=None, pattern=QUEUE_URL_PATTERN)
    """The work queue itself, so a failed message can be hidden for its backoff; without it, the visibility timeout."""
    retry_base_seconds: int = Field(default=30, ge=0, le=43_200)
    retry_max_seconds: int = Field(default=900, ge=0, le=43_200)
    platform_base_url: str = Field(default=DEFAULT_PLATFORM_BASE_URL, pattern=r"^https?://[^\s/]+(/\S*)?$")
    stats_window_days: int = Field(default=30, ge=1, le=365)
    platform_timeout_seconds: float = Field(default=10.0, gt=0, le=25)
    """Two requests of this length (a refused key is re-read once) must fit the worker's 120 s with room to spare."""
    max_receive_count: int = Field(default=8, ge=1)
    secret_max_age_seconds: int = Field(default=300, ge=0, le=86_400)
    rules_file: Path | None = None

    @model_validator(mode="after")
    def _backoff_grows(self) -> Self:
        if self.retry_base_seconds > self.retry_max_seconds:
            raise ValueError("RETRY_BASE_SECONDS must not exceed RETRY_MAX_SECONDS")
        return self

    @field_validator("rules_file", mode="before")
    @classmethod
    def _blank_means_default(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class ScanSettings(Settings):
    """Settings of the scan function."""

    queue_url: str = Field(pattern=QUEUE_URL_PATTERN)
    scan_period_hours: int = Field(default=24, ge=1, le=24 * 90)
    scan_page_size: int = Field(default=100, ge=1, le=1000)
    scan_safety_margin_ms: int = Field(default=10_000, ge=0, le=120_000)
