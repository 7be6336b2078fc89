"""Build a running connector from its config file: every real seam, wired once.

``build_connector`` reads the keys, the mapping, the local policy and the local audit
log named by ``agency.yaml`` and returns the app with a ``close`` for shutdown. Any file
or value that is not usable raises ``ConfigError`` (or ``MappingError``) naming it, so
``junction connector serve`` and ``check`` can print one line and stop.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI

from audit.checkpoint import NoteVerifier, open_checkpoint
from audit.errors import AuditError, ProofError
from audit.merkle import verify_consistency
from connectors.config import ServiceConfig
from connectors.errors import CheckpointInvalid, ConfigError
from connectors.local_audit import AuditLogRecorder, check_audit_database
from connectors.local_policy import RegoLocalPolicy
from connectors.mapping import Mapping, SqlSourceSpec, load_mapping
from connectors.matching.matcher import Matcher
from connectors.matching.model import MatchModel
from connectors.matching.references import LocalReferences
from connectors.matching.tokens import LinkageKey
from connectors.protocol.consent_refs import ConsentKey
from connectors.protocol.envelope import KeyRing, ReplayCache, Signer, Verifier
from connectors.protocol.keys import KeyFileError, load_private_key, load_public_key
from connectors.service.app import create_connector_app
from connectors.service.checkpoints import CheckpointGuard, CheckpointHead
from connectors.service.exchange import AgencyIdentity, ConnectorService
from connectors.service.mapped import MappedAgency
from connectors.settings import ConnectorSettings
from connectors.sources import open_source, parse_source_url

__all__ = ["BuiltConnector", "build_connector", "check_connector", "read_secret", "secret_key_id"]

_STATE_FILE = "broker-checkpoint.note"


def read_secret(path: Path, what: str) -> bytes:
    """Read a secret file: hex text of at least 32 bytes. Raises ``ConfigError``."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII hex"
        raise ConfigError(f"cannot read the {what} {path}: {reason}") from None
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(
            f"the {what} {path} is not hex; create it with: openssl rand -hex 32 > {path}"
        ) from None
    if len(secret) < 32:
        raise ConfigError(f"the {what} {path} holds {len(secret)} bytes; it needs 32 or more")
    return secret


def secret_key_id(secret: bytes) -> str:
    """A public name for a shared secret: the first 16 hex digits of its SHA-256."""
    return "lk-" + hashlib.sha256(secret).hexdigest()[:16]


@dataclass
class BuiltConnector:
    """A connector ready to serve, and what must be released when it stops."""

    app: FastAPI
    service: ConnectorService
    agency: MappedAgency
    audit: AuditLogRecorder
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def _note_verifier(config: ServiceConfig) -> Callable[[str], CheckpointHead]:
    try:
        log_key = NoteVerifier.from_pem(config.broker.log_public_key, config.broker.log_key_name)
    except AuditError as exc:
        raise ConfigError(f"the broker log key: {exc}") from None
    origin = config.broker.log_origin

    def verify(text: str) -> CheckpointHead:
        try:
            checkpoint = open_checkpoint(text, log_key, origin=origin)
        except AuditError as exc:
            raise CheckpointInvalid(f"the broker checkpoint does not verify: {exc}") from None
        return CheckpointHead(checkpoint.origin, checkpoint.size, checkpoint.root_hash, text)

    return verify


def _consistent(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    try:
        verify_consistency(old_size, new_size, old_root, new_root, proof)
    except ProofError:
        return False
    return True


def _with_source_url(mapping: Mapping, source_url: str | None) -> Mapping:
    """The mapping reading from ``source_url`` instead of its own SQL URL, if one is given.

    Raises ``ConfigError`` when the mapping's source is not a SQL database, and
    ``MappingError`` when ``source_url`` is not a URL.
    """
    if not source_url:
        return mapping
    if not isinstance(mapping.source, SqlSourceSpec):
        raise ConfigError(
            f"a source URL was given but the {mapping.agency.id} mapping reads "
            f"{mapping.source.kind} files, not a SQL database; unset JUNCTION_CONNECTOR_SOURCE_URL"
        )
    parse_source_url(source_url, "JUNCTION_CONNECTOR_SOURCE_URL")
    source = mapping.source.model_copy(update={"url": source_url})
    return mapping.model_copy(update={"source": source})


def _consent_key(config: ServiceConfig) -> ConsentKey | None:
    """The consent key shared with the broker, if the agency has chosen to hold one."""
    if config.consent_key is None:
        return None
    return ConsentKey(read_secret(config.consent_key, "consent key"))


def _consent_apart(config: ServiceConfig, linkage: bytes) -> ConsentKey | None:
    """The consent key, if configured. Raises ``ConfigError`` if it is the linkage key:
    the broker holds the consent key, and must not be able to make linkage tokens."""
    consent = _consent_key(config)
    if consent is not None and consent.secret == linkage:
        raise ConfigError(
            f"the consent key {config.consent_key} is also the linkage key; the broker holds"
            " the consent key and must not be able to make linkage tokens: name the broker's"
            " consent.key in consent_key, and the connectors' own shared key in linkage_key"
        )
    return consent


def _reference_secret(config: ServiceConfig, linkage: bytes, consent: ConsentKey | None) -> bytes:
    """The agency's own reference secret. Raises ``ConfigError`` if it is a shared key.

    The linkage key is held by every connector and the consent key by the broker: either
    would let them read the agency's record keys out of its references.
    """
    path = config.reference_secret
    secret = read_secret(path, "reference secret")
    for name, other in (("linkage key", linkage), ("consent key", consent and consent.secret)):
        if secret == other:
            raise ConfigError(
                f"the reference secret {path} is also the {name}; it must be this agency's "
                "alone: write a new file with openssl rand -hex 32 and name it in "
                "reference_secret"
            )
    return secret


def _agency(
    mapping: Mapping,
    config: ServiceConfig,
    linkage: LinkageKey,
    consent: ConsentKey | None,
) -> MappedAgency:
    references = LocalReferences(
        mapping.agency.id, _reference_secret(config, linkage.secret, consent)
    )
    source = open_source(mapping)
    matcher = Matcher(
        source,
        model=MatchModel.load(),
        linkage_key=linkage,
        references=references,
        consent_key=consent,
    )
    return MappedAgency(source, matcher, references)


def build_connector(
    config: ServiceConfig,
    settings: ConnectorSettings,
    *,
    clock: Callable[[], float] = time.time,
    environ: dict[str, str] | None = None,
) -> BuiltConnector:
    """Wire a connector from ``config``. Raises ``ConfigError`` or ``MappingError``.

    ``environ`` supplies ``${VARIABLE}`` references in the mapping file;
    ``settings.source_url``, when set, replaces the mapping's SQL source URL.
    """
    mapping = _with_source_url(
        load_mapping(config.mapping, environ=environ or {}), settings.source_url
    )
    agency_id = mapping.agency.id
    try:
        key = load_private_key(config.signing_key)
        broker_key = load_public_key(config.broker.public_key)
    except KeyFileError as exc:
        raise ConfigError(str(exc)) from None
    linkage_secret = read_secret(config.linkage_key, "linkage key")
    linkage = LinkageKey(secret_key_id(linkage_secret), linkage_secret)
    consent = _consent_apart(config, linkage_secret)
    package = config.local_policy.package
    policy = RegoLocalPolicy.from_file(config.local_policy.file, package=package)
    try:
        config.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {config.state_dir}: {exc.strerror}") from None
    guard = CheckpointGuard(
        _note_verifier(config),
        state_file=config.state_dir / _STATE_FILE,
        verify_consistency=_consistent,
        reorder_window_seconds=settings.checkpoint_reorder_seconds,
    )
    check_audit_database(
        config.audit.database_url, key, agency_id=agency_id, state_dir=config.state_dir
    )
    closers: list[Callable[[], None]] = [policy.close]
    try:
        agency = _agency(mapping, config, linkage, consent)
        closers.append(agency.close)
        audit = AuditLogRecorder.open(
            config.audit.database_url,
            key,
            agency_id=agency_id,
            checkpoint_interval=config.audit.checkpoint_interval_ms / 1000,
        )
    except BaseException:
        for close in reversed(closers):
            close()
        raise
    closers.append(audit.close)
    ring = KeyRing()
    ring.add(config.broker.name, broker_key)
    service = ConnectorService(
        agency=AgencyIdentity(
            agency_id,
            mapping.agency.name,
            mapping.agency.type,
            linkage.key_id,
            consent.key_id if consent else None,
        ),
        signer=Signer(
            key, agency_id, lifetime_seconds=settings.envelope_lifetime_seconds, clock=clock
        ),
        verifier=Verifier(
            ring,
            agency_id,
            replay_cache=ReplayCache(settings.replay_cache_size),
            clock=clock,
            max_skew_seconds=settings.max_clock_skew_seconds,
        ),
        source=agency,
        policy=policy,
        audit=audit,
        checkpoints=guard,
        clock=clock,
        source_timeout_seconds=settings.source_timeout_seconds,
    )
    app = create_connector_app(
        service,
        broker_name=config.broker.name,
        ready_probe=agency.check,
        max_body_bytes=settings.max_body_bytes,
    )
    return BuiltConnector(app=app, service=service, agency=agency, audit=audit, closers=closers)


def check_connector(
    config: ServiceConfig,
    *,
    environ: dict[str, str] | None = None,
    source_url: str | None = None,
) -> Mapping:
    """Check everything ``build_connector`` needs, without writing to the audit log.

    The mapping (reading from ``source_url`` when given) is validated against the live
    source; the keys, secrets and local policy are loaded; the audit database is
    reached (or, for SQLite, can be created) and holds no log or this agency's. Raises
    ``ConfigError`` or
    ``MappingError`` naming the first problem; returns the mapping when all is well.
    """
    mapping = _with_source_url(load_mapping(config.mapping, environ=environ or {}), source_url)
    try:
        key = load_private_key(config.signing_key)
        load_public_key(config.broker.public_key)
    except KeyFileError as exc:
        raise ConfigError(str(exc)) from None
    check_audit_database(
        config.audit.database_url, key, agency_id=mapping.agency.id, state_dir=config.state_dir
    )
    _note_verifier(config)
    linkage = read_secret(config.linkage_key, "linkage key")
    _reference_secret(config, linkage, _consent_apart(config, linkage))
    RegoLocalPolicy.from_file(config.local_policy.file, package=config.local_policy.package).close()
    source = open_source(mapping)
    try:
        source.check()
    finally:
        source.close()
    return mapping
