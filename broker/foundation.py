"""Building the broker's foundation from settings: database, audit log, identity,
registry and consent register. ``create_app`` opens it at start-up and closes it at
shutdown; the command line opens it to seed the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from audit.checkpoint import NoteSigner
from audit.errors import AuditError
from audit.log import AuditLog
from broker.consent.service import ConsentService
from broker.db import Database
from broker.errors import StoreUnavailable
from broker.identity import ClaimNames, DevIssuer, TokenVerifier, load_or_create_key
from broker.registry.service import RegistryService
from broker.settings import BrokerSettings
from broker.subjects import SubjectKeys

__all__ = ["Foundation", "open_audit_log", "open_dev_issuer"]


def open_audit_log(settings: BrokerSettings) -> AuditLog:
    """The broker's audit log, in the broker's database, signed with its key in data_dir.

    Raises ``ConfigurationError`` for an unusable key, ``StoreUnavailable`` if the
    database cannot hold the log.
    """
    path = settings.audit_key_file()
    load_or_create_key(path)
    try:
        signer = NoteSigner.from_pem(path, settings.audit_origin)
        return AuditLog.open(settings.resolved_database_url(), signer, origin=settings.audit_origin)
    except AuditError as exc:
        raise StoreUnavailable(f"cannot open the audit log: {exc}") from None


def open_dev_issuer(settings: BrokerSettings) -> DevIssuer:
    """The development issuer, with its key in data_dir. Raises ``ConfigurationError``."""
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
        ``StoreUnavailable``.
        """
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database.open(settings.resolved_database_url())
        owns = audit_log is None
        try:
            audit = audit_log if audit_log is not None else open_audit_log(settings)
        except BaseException:
            db.close()
            raise
        subject_keys = SubjectKeys.load_or_create(settings.subject_key_file())
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
            manifest_timeout_seconds=settings.manifest_timeout_seconds,
        )
        return cls(
            db=db,
            audit=audit,
            http=http,
            oidc_http=oidc_http,
            registry=registry,
            consent=ConsentService(db, audit, subject_keys),
            subject_keys=subject_keys,
            token_verifier=verifier,
            dev_issuer=open_dev_issuer(settings) if settings.dev_issuer else None,
            _owns_audit=owns,
        )

    async def aclose(self) -> None:
        """Close the HTTP clients, the audit log (if opened here) and the database."""
        await self.http.aclose()
        await self.oidc_http.aclose()
        if self._owns_audit:
            self.audit.close()
        self.db.close()
