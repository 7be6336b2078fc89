"""How Junction finds and runs its policy bundle, read from ``JUNCTION_POLICY_*``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    bundle_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=lambda: [DEFAULT_BUNDLE_DIR],
        description=(
            "Directories holding rego/*.rego and data/**/*.json: a JSON list, one folder, "
            "or folders separated by os.pathsep (':')."
        ),
    )

    @field_validator("opa_url")
    @classmethod
    def _opa_url(cls, value: str) -> str:
        """Refuse a URL the OPA client cannot reach: it takes a host and port only."""
        problem = _opa_url_problem(value)
        if problem is not None:
            raise ValueError(f"{problem}; write it as http://host:8181")
        return value

    @field_validator("bundle_dirs", mode="before")
    @classmethod
    def _folders(cls, value: object) -> object:
        """Read the variable as a JSON list if it looks like one, else as folders."""
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("["):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                raise ValueError(
                    "not a JSON list of folders (e.g. '[\"/etc/junction/policy\"]');"
                    " a single folder may be given as it is"
                ) from None
        folders = [part for part in value.split(os.pathsep) if part.strip()]
        if not folders:
            raise ValueError("names no folder; unset it for the bundle shipped with Junction")
        return folders


def _opa_url_problem(url: str) -> str | None:
    """What makes ``url`` unusable as the OPA server's address, or None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "an IPv6 address goes in brackets, e.g. http://[::1]:8181"
    if parts.scheme not in {"http", "https"}:
        return "it must start with http:// or https://"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        return "the port must be a number from 1 to 65535"
    if not parts.hostname:
        return "it names no host"
    if parts.path not in {"", "/"} or parts.query or parts.fragment:
        # The client sends every request to /v1/... on the host: a path would be ignored.
        return "it takes no path, query or fragment: OPA answers at /v1"
    return None
