"""The broker's configuration: one object, read from ``JUNCTION_*`` at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["BrokerSettings"]


class BrokerSettings(BaseSettings):
    """Everything the broker can be told. Build it once and pass it down."""

    model_config = SettingsConfigDict(env_prefix="JUNCTION_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    data_dir: Path = Field(default=Path("var"), description="Where keys and SQLite live.")
    database_url: str = Field(
        default="", description="SQLAlchemy URL; empty means SQLite in data_dir."
    )
    log_json: bool = Field(default=False, description="JSON log lines (production).")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest request body.")
    name: str = Field(
        default="broker", description="The broker's name: the audience of connector envelopes."
    )
    public_url: str = Field(
        default="", description="Base URL callers reach the broker at; empty means host:port."
    )
    dev_issuer: bool = Field(
        default=True,
        description="Serve the development OpenID issuer at /dev-oidc (never in production).",
    )
    oidc_issuer: str = Field(
        default="", description="Issuer URL of bearer tokens; empty means the dev issuer."
    )
    oidc_audience: str = Field(default="junction-broker", description="Required 'aud' claim.")
    oidc_role_claim: str = Field(default="role", description="Claim holding the role.")
    oidc_agency_claim: str = Field(default="agency", description="Claim holding the agency id.")
    oidc_name_claim: str = Field(default="name", description="Claim holding the display name.")
    oidc_client_id: str = Field(
        default="",
        description=(
            "Client id of the web pages at JUNCTION_OIDC_ISSUER: with it, signing in sends "
            "the browser to the identity provider (authorization code with PKCE)."
        ),
    )
    oidc_client_secret: SecretStr | None = Field(
        default=None,
        description="Secret of a confidential client (sent with HTTP Basic); unset: a public one.",
    )
    oidc_scope: str = Field(default="openid", description="Scopes asked for at sign-in.")
    oidc_jwks_ttl_seconds: int = Field(default=3600, ge=0, description="JWKS cache lifetime.")
    oidc_leeway_seconds: int = Field(default=30, ge=0, le=300, description="Clock skew allowed.")
    audit_origin: str = Field(
        default="junction.local/audit", description="The audit log's name on its checkpoints."
    )
    manifest_timeout_seconds: float = Field(
        default=5.0, gt=0, description="How long to wait for a connector's manifest."
    )
    signing_key: Path | None = Field(
        default=None,
        description="Ed25519 key signing envelopes to connectors; default data_dir/broker.key.",
    )
    consent_key: Path | None = Field(
        default=None,
        description=(
            "Secret shared with the connectors for consent references; "
            "default data_dir/consent.key."
        ),
    )
    query_deadline_seconds: float = Field(
        default=5.0, gt=0, le=60, description="Overall deadline of one family query."
    )
    agency_timeout_seconds: float = Field(
        default=3.0, gt=0, le=60, description="How long one agency may take to answer."
    )

    # When the IG officers' anomaly flags fire (see docs/ig-officer-guide.md#anomalies).
    anomaly_volume_factor: float = Field(
        default=3.0, gt=1, description="A day above this multiple of the caseworker's median."
    )
    anomaly_volume_minimum: int = Field(
        default=20, ge=1, description="...and above this many queries, for a volume flag."
    )
    anomaly_volume_history_days: int = Field(
        default=28, ge=1, le=366, description="Days of history the median is taken over."
    )
    anomaly_volume_min_history_days: int = Field(
        default=5, ge=1, description="Working days of history needed before volume flags."
    )
    anomaly_day_starts: int = Field(
        default=7, ge=0, le=23, description="Hour the working day starts (local time)."
    )
    anomaly_day_ends: int = Field(
        default=20, ge=1, le=24, description="Hour from which a query is out of hours."
    )
    anomaly_timezone: str = Field(
        default="Europe/London", description="IANA time zone of working hours and days."
    )
    anomaly_no_match_queries: int = Field(
        default=3, ge=1, description="No-match queries in one day that raise a flag."
    )
    anomaly_break_glass_count: int = Field(
        default=3, ge=1, description="Break-glass uses that raise a flag..."
    )
    anomaly_break_glass_days: int = Field(default=7, ge=1, description="...within this many days.")

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_dir_named(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            # Path("") is the current directory: keys would land wherever one stands.
            raise ValueError("is empty: name a folder, or unset it for ./var")
        return value

    @field_validator("data_dir")
    @classmethod
    def _data_dir_a_folder(cls, value: Path) -> Path:
        # The nearest part of the path that exists must be a folder; the rest is
        # created at start-up.
        for existing in (value, *value.parents):
            if existing.exists():
                if not existing.is_dir():
                    where = "" if existing == value else f" ({existing} is a file)"
                    raise ValueError(f"{value} is not a folder{where}")
                break
        return value

    @field_validator("anomaly_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/London)") from None
        return value

    @model_validator(mode="after")
    def _working_day(self) -> BrokerSettings:
        if self.anomaly_day_starts >= self.anomaly_day_ends:
            raise ValueError("anomaly_day_starts must be earlier than anomaly_day_ends")
        return self

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'broker.db').resolve()}"

    def resolved_public_url(self) -> str:
        """The broker's own base URL, without a trailing slash."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def dev_issuer_url(self) -> str:
        """Where the development issuer lives: the broker's own URL + ``/dev-oidc``."""
        return self.resolved_public_url() + "/dev-oidc"

    def resolved_issuer(self) -> str:
        """The issuer whose tokens are accepted."""
        return (self.oidc_issuer or self.dev_issuer_url()).rstrip("/")

    def dev_issuer_key_file(self) -> Path:
        """The development issuer's Ed25519 signing key (created on first use, 0600)."""
        return self.data_dir / "dev-oidc.key"

    def audit_key_file(self) -> Path:
        """The audit log's checkpoint signing key (Ed25519 PEM, created on first use)."""
        return self.data_dir / "audit-log.key"

    def signing_key_file(self) -> Path:
        """The broker's envelope signing key (Ed25519 PEM, created on first use)."""
        return self.signing_key or self.data_dir / "broker.key"

    def sealing_key_file(self) -> Path:
        """The key sealing answers kept for idempotency keys (created on first use)."""
        return self.data_dir / "idempotency.key"

    def consent_key_file(self) -> Path:
        """The consent key shared with the connectors (hex, created on first use, 0600)."""
        return self.consent_key or self.data_dir / "consent.key"

    def subject_key_file(self) -> Path:
        """The secret key of keyed subject references (created on first use, 0600)."""
        return self.data_dir / "subject-reference.key"
