"""How Junction finds and runs its policy bundle, read from ``JUNCTION_POLICY_*``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_BUNDLE_DIR", "EngineName", "PolicySettings"]

DEFAULT_BUNDLE_DIR = Path(__file__).resolve().parent
EngineName = Literal["embedded", "regopy", "opa"]


class PolicySettings(BaseSettings):
    """Which engine decides, and where the bundle is. Build once and pass down."""

    model_config = SettingsConfigDict(env_prefix="JUNCTION_POLICY_", extra="ignore")

    engine: EngineName = Field(
        default="embedded",
        description="embedded (regorus, in-process), regopy (in-process) or opa (a server).",
    )
    compiled: bool = Field(
        default=True,
        description=(
            "Embedded engine only: run the family decision on regorus's virtual machine "
            "(about twice as fast); false evaluates it with the interpreter."
        ),
    )
    opa_url: str = Field(default="http://127.0.0.1:8181", description="Base URL of the OPA server.")
    opa_timeout_seconds: float = Field(default=5.0, gt=0)
    bundle_dirs: list[Path] = Field(
        default_factory=lambda: [DEFAULT_BUNDLE_DIR],
        description="Directories holding rego/*.rego and data/**/*.json.",
    )
