"""The service part of an agency's connector configuration (``agency.yaml``).

The file names everything the connector needs beside the mapping: the agency's signing
key, the broker it answers to (its name, pinned envelope key and pinned audit-log key),
where to listen, the linkage key shared with the other connectors, the consent key shared
with the broker, the secret that seals its local references, the local policy, and where
the local audit log lives. Relative
paths are taken from the file's folder::

    mapping: police.mapping.yaml          # the data mapping (connectors.mapping)
    signing_key: keys/police.key          # junction keys generate --name police
    linkage_key: keys/linkage.key         # 32+ random bytes (hex), shared by connectors
    consent_key: keys/consent.key         # optional: the broker's consent key (hex)
    reference_secret: keys/police.refs    # 32+ random bytes (hex), this agency's alone
    broker:
      name: broker
      public_key: keys/broker.pub         # pinned: envelopes signed by it are accepted
      log_public_key: keys/broker-log.pub # pinned: signs the broker's audit checkpoints
      log_key_name: junction-broker       # the key name on its checkpoint signatures
      log_origin: junction.example/audit  # optional: accept only this log
    listen: {host: 127.0.0.1, port: 8101}
    local_policy: {file: police.rego, package: junction.local.police}
    audit: {database_url: "sqlite:///var/police/audit.db"}
    state_dir: var/police                 # the latest broker checkpoint is kept here
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from connectors._validation import first_problem
from connectors._yaml import YamlProblem, read_yaml
from connectors.encoding import not_utf8
from connectors.errors import ConfigError

__all__ = [
    "AuditConfig",
    "BrokerConfig",
    "ListenConfig",
    "LocalPolicyConfig",
    "ServiceConfig",
    "load_service_config",
]

_Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{1,62}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerConfig(_Model):
    name: _Name = "broker"
    public_key: Path
    log_public_key: Path
    log_key_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    log_origin: str | None = None


class ListenConfig(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8100


class LocalPolicyConfig(_Model):
    file: Path
    package: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")]


class AuditConfig(_Model):
    database_url: str
    checkpoint_interval_ms: Annotated[int, Field(ge=1, le=60_000)] = 200


class ServiceConfig(_Model):
    """The connector's service configuration, with every path made absolute."""

    mapping: Path
    signing_key: Path
    linkage_key: Path
    consent_key: Path | None = None
    reference_secret: Path
    broker: BrokerConfig
    listen: ListenConfig = ListenConfig()
    local_policy: LocalPolicyConfig
    audit: AuditConfig
    state_dir: Path

    def resolved(self, base: Path) -> ServiceConfig:
        """A copy whose relative paths (and SQLite URLs) are taken from ``base``."""

        def at(path: Path) -> Path:
            return path if path.is_absolute() else (base / path).resolve()

        url = self.audit.database_url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix:
            url = prefix + str(at(Path(url.removeprefix(prefix))))
        return self.model_copy(
            update={
                "mapping": at(self.mapping),
                "signing_key": at(self.signing_key),
                "linkage_key": at(self.linkage_key),
                "consent_key": at(self.consent_key) if self.consent_key else None,
                "reference_secret": at(self.reference_secret),
                "state_dir": at(self.state_dir),
                "broker": self.broker.model_copy(
                    update={
                        "public_key": at(self.broker.public_key),
                        "log_public_key": at(self.broker.log_public_key),
                    }
                ),
                "local_policy": self.local_policy.model_copy(
                    update={"file": at(self.local_policy.file)}
                ),
                "audit": self.audit.model_copy(update={"database_url": url}),
            }
        )


def load_service_config(path: Path) -> ServiceConfig:
    """Read ``agency.yaml``. Raises ``ConfigError`` naming the first bad member."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(not_utf8(path)) from None
    try:
        raw = read_yaml(text)
    except YamlProblem as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with mapping, signing_key, broker, ...")
    try:
        config = ServiceConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {first_problem(exc, ServiceConfig)}") from None
    return config.resolved(path.parent.resolve())
