"""Building the broker's foundation from settings: database, audit log, identity,
registry and consent register. ``create_app`` opens it at start-up and closes it at
shutdown; the command line opens it to seed the registry.
"""

from __future__ import annotations

import os
import secrets
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from audit.checkpoint import NoteSigner
from audit.entry import Decision, Entry, Kind
from audit.errors import AuditError
from audit.log import AuditLog
from broker.consent.service import ConsentService
from broker.consent.vocabulary import ConsentVocabulary, vocabulary_from
from broker.db import Database
from broker.errors import ConfigurationError, StoreUnavailable
from broker.federation.client import ConnectorClient
from broker.identity import ClaimNames, DevIssuer, TokenVerifier, load_or_create_key
from broker.operations.metrics import BrokerMetrics
from broker.operations.readiness import Readiness
from broker.oversight.anomalies import Thresholds
from broker.oversight.sar import SubjectAccessReports
from broker.oversight.service import OversightService
from broker.policy_admin.runner import PolicyThread
from broker.queries.follow_up import FollowUpService
from broker.queries.service import FamilyQueryService, QuerySettings
from broker.queries.store import QueryStore
from broker.registry.service import RegistryService
from broker.settings import BrokerSettings
from broker.subjects import SubjectKeys
from connectors.protocol import KeyRing, Signer
from policies.decide import FAMILY_ENTRYPOINT
from policies.engine import create_engine as create_policy_engine
from policies.errors import PolicyError
from policies.service import PolicyService
from policies.settings import PolicySettings

__all__ = [
    "Foundation",
    "load_or_create_secret",
    "open_audit_log",
    "open_dev_issuer",
    "open_policy",
    "prepare_data_dir",
]


def prepare_data_dir(settings: BrokerSettings) -> Path:
    """``JUNCTION_DATA_DIR``, created if missing.

    Raises ``ConfigurationError`` if it cannot be created (a read-only or missing
    parent, say); ``BrokerSettings`` has already refused one that is a file.
    """
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"JUNCTION_DATA_DIR {settings.data_dir} cannot be created: {exc.strerror}"
        ) from None
    return settings.data_dir


def open_audit_log(settings: BrokerSettings) -> AuditLog:
    """The broker's audit log, in the broker's database, signed with its key in data_dir.

    Raises ``ConfigurationError`` for an unusable key, ``StoreUnavailable`` if the
    database cannot hold the log.
    """
    prepare_data_dir(settings)
    path = settings.audit_key_file()
    load_or_create_key(path, "the audit log's key")
    try:
        signer = NoteSigner.from_pem(path, settings.audit_origin)
        return AuditLog.open(settings.resolved_database_url(), signer, origin=settings.audit_origin)
    except AuditError as exc:
        hint = (
            "; set JUNCTION_AUDIT_ORIGIN to the log's origin"
            if "holds a log with origin" in str(exc)
            else ""
        )
        raise StoreUnavailable(f"cannot open the audit log: {exc}{hint}") from None


def _consent_vocabulary(policy: PolicyThread, registry: RegistryService) -> ConsentVocabulary:
    offered = {
        agency.id: [f.name for f in agency.connector.fields] if agency.connector else []
        for agency in registry.list_agencies()
    }
    return vocabulary_from(policy.catalogue, offered)


def open_policy(settings: BrokerSettings, audit: AuditLog) -> PolicyThread:
    """The policy bundle in force, on the engine ``JUNCTION_POLICY_*`` names.

    Loading it, and every later reload, is a ``policy_change`` audit entry carrying the
    bundle's digest. Raises ``ConfigurationError`` if the bundle cannot be used.
    """
    policy_settings = PolicySettings()

    def record(
        new_digest: str, previous_digest: str | None, actor: str, detail: dict[str, Any]
    ) -> None:
        entry = Entry(
            kind=Kind.POLICY_CHANGE,
            actor=actor,
            actor_agency=detail.get("actor_agency"),
            decision=Decision.ALLOW,
            reasons=(str(detail.get("reason", "reload")), f"engine:{detail.get('engine')}"),
            policy_digest=new_digest,
            # The digest it replaced, so the chain of bundles can be followed.
            request_digest=previous_digest,
        )
        try:
            audit.append(entry)
        except AuditError as exc:
            raise StoreUnavailable(
                "the audit log could not record this policy change, so the bundle in force"
                f" is unchanged: {exc}"
            ) from None

    try:
        return PolicyThread(
            lambda: PolicyService(
                policy_settings.bundle_dirs,
                lambda bundle: create_policy_engine(
                    policy_settings, bundle, compiled=[FAMILY_ENTRYPOINT]
                ),
                record,
                actor=f"broker:{settings.name}",
            )
        )
    except PolicyError as exc:
        raise ConfigurationError(f"the policy bundle cannot be used: {exc}") from None


def load_or_create_secret(path: Path) -> bytes:
    """32 random bytes kept in ``path`` (hex, mode 0600), created on first use.

    Raises ``ConfigurationError`` if the file is unreadable or not hex.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
    try:
        secret = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the secret {path}: {exc}") from None
    if len(secret) != 32:
        raise ConfigurationError(f"the secret {path} must hold 32 bytes of hex")
    return secret


def open_dev_issuer(settings: BrokerSettings) -> DevIssuer:
    """The development issuer, with its key in data_dir. Raises ``ConfigurationError``."""
    prepare_data_dir(settings)
    key = load_or_create_key(settings.dev_issuer_key_file())
    return DevIssuer(key, settings.dev_issuer_url(), settings.oidc_audience)


@dataclass(slots=True)
class Foundation:
    """Everything the foundation domains need at run time, built once."""

    db: Database
    audit: AuditLog
    http: httpx.AsyncClient
    oidc_http: httpx.AsyncClient
    registry: RegistryService
    consent: ConsentService
    subject_keys: SubjectKeys
    token_verifier: TokenVerifier
    dev_issuer: DevIssuer | None
    policy: PolicyThread
    connector_client: ConnectorClient
    query_store: QueryStore
    family_queries: FamilyQueryService
    follow_up: FollowUpService
    metrics: BrokerMetrics
    oversight: OversightService
    subject_access: SubjectAccessReports
    readiness: Readiness
    _owns_audit: bool = False

    @classmethod
    def open(
        cls,
        settings: BrokerSettings,
        *,
        audit_log: AuditLog | None = None,
        connector_transport: httpx.AsyncBaseTransport | None = None,
        oidc_transport: httpx.AsyncBaseTransport | None = None,
    ) -> Foundation:
        """Open the database (migrating it) and build the services.

        ``audit_log`` is used if given (and left open by ``close``); otherwise the
        broker's own log is opened. The transports are the seams tests use to reach
        connectors and the identity provider. Raises ``ConfigurationError`` or
        ``StoreUnavailable``, having closed what it opened.
        """
        prepare_data_dir(settings)
        # The key files first: a wrong one is found before the database is migrated.
        signer = Signer(
            load_or_create_key(settings.signing_key_file(), "JUNCTION_SIGNING_KEY"),
            settings.name,
        )
        sealing_secret = load_or_create_secret(settings.sealing_key_file())
        subject_keys = SubjectKeys.load_or_create(
            settings.subject_key_file(), settings.consent_key_file()
        )
        dev_issuer = open_dev_issuer(settings) if settings.dev_issuer else None
        owns = audit_log is None
        with ExitStack() as opened:
            db = Database.open(settings.resolved_database_url())
            opened.callback(db.close)
            audit = audit_log if audit_log is not None else open_audit_log(settings)
            if owns:
                opened.callback(audit.close)
            policy = open_policy(settings, audit)
            opened.pop_all()
        http = httpx.AsyncClient(transport=connector_transport, timeout=10.0)
        oidc_http = httpx.AsyncClient(transport=oidc_transport, timeout=10.0)
        verifier = TokenVerifier(
            settings.resolved_issuer(),
            settings.oidc_audience,
            oidc_http,
            claims=ClaimNames(
                role=settings.oidc_role_claim,
                agency=settings.oidc_agency_claim,
                name=settings.oidc_name_claim,
            ),
            jwks_ttl_seconds=settings.oidc_jwks_ttl_seconds,
            leeway_seconds=settings.oidc_leeway_seconds,
        )
        registry = RegistryService(
            db,
            audit,
            http=http,
            broker_name=settings.name,
            catalogue=lambda: policy.catalogue,
            consent_key_id=subject_keys.consent_key_id,
            manifest_timeout_seconds=settings.manifest_timeout_seconds,
        )
        consent = ConsentService(
            db, audit, subject_keys, vocabulary=lambda: _consent_vocabulary(policy, registry)
        )
        client = ConnectorClient(signer, KeyRing(), transport=connector_transport)
        store = QueryStore(db, sealing_secret)
        metrics = BrokerMetrics()
        oversight = OversightService(
            audit=audit,
            db=db,
            subjects=subject_keys,
            thresholds=_thresholds(settings),
        )
        queries = FamilyQueryService(
            client=client,
            registry=registry,
            consents=consent,
            links=store,
            records=store,
            policy=policy,
            audit=audit,
            subjects=subject_keys,
            settings=QuerySettings(
                deadline_seconds=settings.query_deadline_seconds,
                agency_timeout_seconds=settings.agency_timeout_seconds,
            ),
            metrics=metrics,
        )
        return cls(
            db=db,
            audit=audit,
            http=http,
            oidc_http=oidc_http,
            registry=registry,
            consent=consent,
            subject_keys=subject_keys,
            token_verifier=verifier,
            dev_issuer=dev_issuer,
            policy=policy,
            connector_client=client,
            query_store=store,
            family_queries=queries,
            follow_up=FollowUpService(store, audit, subject_keys),
            metrics=metrics,
            oversight=oversight,
            subject_access=SubjectAccessReports(oversight, audit),
            readiness=Readiness(db, audit, policy),
            _owns_audit=owns,
        )

    async def aclose(self) -> None:
        """Close the HTTP clients, the audit log (if opened here) and the database."""
        await self.connector_client.aclose()
        self.policy.close()
        await self.http.aclose()
        await self.oidc_http.aclose()
        if self._owns_audit:
            self.audit.close()
        self.db.close()


def _thresholds(settings: BrokerSettings) -> Thresholds:
    """The anomaly rules' thresholds from the ``JUNCTION_ANOMALY_*`` settings."""
    return Thresholds(
        volume_factor=settings.anomaly_volume_factor,
        volume_minimum=settings.anomaly_volume_minimum,
        volume_history_days=settings.anomaly_volume_history_days,
        volume_min_history_days=settings.anomaly_volume_min_history_days,
        day_starts=settings.anomaly_day_starts,
        day_ends=settings.anomaly_day_ends,
        timezone=settings.anomaly_timezone,
        no_match_queries=settings.anomaly_no_match_queries,
        break_glass_count=settings.anomaly_break_glass_count,
        break_glass_days=settings.anomaly_break_glass_days,
    )
