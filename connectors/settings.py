"""The connector process's settings: one object, read from ``JUNCTION_CONNECTOR_*``.

What is specific to an agency (keys, broker, mapping, policy) lives in its config file
(``connectors.config``); these are the process-level knobs an operator tunes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ConnectorSettings"]


class ConnectorSettings(BaseSettings):
    """Everything the connector process can be told. Build it once and pass it down."""

    model_config = SettingsConfigDict(env_prefix="JUNCTION_CONNECTOR_", extra="ignore")

    config: Path | None = Field(default=None, description="The agency's config file.")
    host: str | None = Field(default=None, description="Overrides listen.host of the config.")
    port: int | None = Field(default=None, ge=1, le=65535, description="Overrides listen.port.")
    source_url: str | None = Field(
        default=None,
        description="Overrides the mapping's SQL source URL (a deployment's own database).",
    )
    log_json: bool = Field(default=False, description="JSON log lines (production).")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest request body.")
    source_timeout_seconds: float = Field(
        default=5.0, gt=0, le=600, description="Deadline for one read of the agency's system."
    )
    envelope_lifetime_seconds: int = Field(
        default=60, ge=5, le=300, description="How long the connector's answers stay valid."
    )
    max_clock_skew_seconds: int = Field(default=30, ge=0, le=300)
    replay_cache_size: int = Field(default=100_000, ge=1000)
    checkpoint_reorder_seconds: float = Field(
        default=10.0,
        ge=0,
        le=300,
        description="How long an older broker checkpoint counts as overtaken in flight.",
    )
