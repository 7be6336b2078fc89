"""The registry: agencies, their connectors, and versioned data sharing agreements.

Every change is one ``registry_change`` audit entry, written before the change is
stored. Agreements are never altered: a change stores a new version, and the query
flow reads the version in force at the time of the query. Changes are made one at a
time, across every broker process on the database.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx
from sqlalchemy.orm import Session

from audit.entry import Kind
from audit.log import AuditLog
from broker._audit import record_change
from broker.db import Database
from broker.errors import Conflict, InvalidChange, NotFound, PreconditionFailed
from broker.identity.principal import Principal
from broker.registry import repository as repo
from broker.registry.manifests import fetch_manifest
from broker.registry.models import AgencyRow, AgreementRow, ConnectorRow
from broker.registry.schemas import (
    AgencyChange,
    AgencyIn,
    AgencyOut,
    AgreementCreate,
    AgreementIn,
    AgreementOut,
    ConnectorIn,
    ConnectorOut,
    agency_etag,
    agreement_etag,
    if_match_names,
)
from broker.vocabulary import refuse_unknown
from connectors.protocol.keys import KeyFileError, key_id_for, public_key_from_b64
from connectors.protocol.messages import Manifest
from policies.model import SharingAgreement

__all__ = ["ConnectorRecord", "ManifestField", "RegistryService"]


_UNKNOWN_AGENCY = "no agency {!r} is registered; list them at /v1/agencies"


# The database lock every broker process takes to change the registry.
_LOCK = "registry"

_P = ParamSpec("_P")
_T = TypeVar("_T")


def _one_at_a_time(
    method: Callable[Concatenate[RegistryService, _P], _T],
) -> Callable[Concatenate[RegistryService, _P], _T]:
    @functools.wraps(method)
    def serialised(self: RegistryService, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        # This process's changes queue here, so only one of them waits on the database.
        with self._changes, self._db.exclusive(_LOCK):
            return method(self, *args, **kwargs)

    return serialised


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ManifestField:
    """One field a connector offers, as its signed manifest describes it."""

    name: str
    sensitivity: str
    type: str


@dataclass(frozen=True, slots=True)
class ConnectorManifest:
    """A connector's manifest as fetched and checked from ``base_url``, and the
    registered connector's ``(base_url, public_key)`` when it was fetched."""

    base_url: str
    manifest: Manifest
    replaces: tuple[str, str] | None


@dataclass(frozen=True, slots=True)
class ConnectorRecord:
    """A registered connector, as the query flow needs it to match and fetch."""

    agency_id: str
    agency_name: str
    agency_type: str
    base_url: str
    public_key: str
    key_id: str
    linkage_key_id: str
    fields: tuple[ManifestField, ...]


def _connector_out(row: ConnectorRow) -> ConnectorOut:
    manifest = Manifest.model_validate(row.manifest)
    return ConnectorOut(
        agency_id=row.agency_id,
        base_url=row.base_url,
        public_key=row.public_key,
        key_id=row.key_id,
        agency_name=manifest.agency_name,
        linkage_key_id=manifest.linkage_key_id,
        consent_key_id=manifest.consent_key_id,
        fields=manifest.fields,
        manifest_fetched_at=row.manifest_fetched_at,
        registered_at=row.registered_at,
    )


def _agency_out(row: AgencyRow, connector: ConnectorRow | None) -> AgencyOut:
    return AgencyOut(
        id=row.id,
        name=row.name,
        type=row.type,
        created_at=row.created_at,
        updated_at=row.updated_at,
        connector=_connector_out(connector) if connector is not None else None,
    )


def _check_agency_if_match(
    agency_id: str, name: str, agency_type: str, if_match: str | None
) -> None:
    """Raises ``PreconditionFailed`` if ``if_match`` does not name the agency as it is."""
    etag = agency_etag(name, agency_type)
    if if_match is not None and not if_match_names(if_match, etag):
        raise PreconditionFailed(
            f"agency {agency_id!r} has changed since the version If-Match names: read it"
            f" again (GET /v1/agencies/{agency_id}), make your change to what it is now and"
            f" send it with If-Match: {etag}"
        )


def _agreement_out(row: AgreementRow) -> AgreementOut:
    return AgreementOut.model_validate(row, from_attributes=True)


def _agreement_terms(row: AgreementRow) -> dict[str, Any]:
    # A version stored before the date range was enforced is still compared, not refused;
    # one stored with its lists in the order sent compares as sorted, as new terms do.
    terms = AgreementIn.model_validate(row, from_attributes=True, context={"stored": True})
    return terms.model_dump(mode="json")


class RegistryService:
    """Reads and changes the registry. Thread-safe; database calls block."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        *,
        http: httpx.AsyncClient,
        broker_name: str,
        catalogue: Callable[[], Mapping[str, Any]],
        consent_key_id: str | None = None,
        manifest_timeout_seconds: float = 5.0,
        agreements_recheck_seconds: float = 0.5,
        clock: Callable[[], datetime] = _utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._audit = audit
        self._catalogue = catalogue
        self._http = http
        self._broker_name = broker_name
        self._consent_key_id = consent_key_id
        self._timeout = manifest_timeout_seconds
        self._clock = clock
        # Per agency: its manifest as stored, and what the query flow takes from it.
        self._manifests: dict[str, tuple[Any, tuple[str, tuple[ManifestField, ...]]]] = {}
        # Every agreement version, parsed, keyed by how many versions were stored when it
        # was read: versions are never changed or deleted, so an equal count means an
        # equal set, and each query costs one COUNT instead of reading them all again.
        self._agreements: tuple[int, tuple[tuple[SharingAgreement, datetime], ...]] = (-1, ())
        self._agreements_lock = threading.Lock()
        # A change is checked, logged, then stored (the log must not be waited on while
        # a write holds the database). Two requests for the same change must not both
        # pass the check and both be logged: changes go one by one, through this lock
        # within the process and through the database's registry lock across processes.
        self._changes = threading.RLock()
        # A family query asks once per provider; within this window the COUNT is not
        # repeated. Changes made through this service are seen at once; changes made
        # by another broker replica within ``agreements_recheck_seconds``.
        self._recheck = agreements_recheck_seconds
        self._monotonic = monotonic
        self._checked_at: float | None = None

    # -- agencies -----------------------------------------------------------------

    def list_agencies(self) -> list[AgencyOut]:
        """Every registered agency with its connector. Raises ``StoreUnavailable``."""
        with self._db.session() as session:
            connectors = {c.agency_id: c for c, _ in repo.connectors(session)}
            return [_agency_out(a, connectors.get(a.id)) for a in repo.agencies(session)]

    def get_agency(self, agency_id: str) -> AgencyOut:
        """One agency. Raises ``NotFound``."""
        with self._db.session() as session:
            row = self._agency(session, agency_id)
            return _agency_out(row, repo.connector(session, agency_id))

    def agency_type(self, agency_id: str) -> str:
        """The type of a registered agency (e.g. ``police``). Raises ``NotFound``."""
        with self._db.read() as connection:
            found = repo.agency_type(connection, agency_id)
        if found is None:
            raise NotFound(_UNKNOWN_AGENCY.format(agency_id))
        return found

    @_one_at_a_time
    def create_agency(self, actor: Principal, agency: AgencyIn) -> AgencyOut:
        """Register a new agency.

        Raises ``Conflict`` if its id is taken, ``InvalidChange`` for a type the policy
        catalogue does not list.
        """
        with self._db.session() as session:
            if repo.agency(session, agency.id) is not None:
                raise Conflict(f"agency {agency.id!r} is already registered; change it with PUT")
        self._check_agency_type(agency.type)
        record_change(
            self._audit,
            Kind.REGISTRY_CHANGE,
            actor,
            action="agency_registered",
            change=agency.model_dump(mode="json"),
            counterparty_agency=agency.id,
        )
        now = self._clock()
        with self._db.session(write=True) as session:
            row = AgencyRow(
                id=agency.id, name=agency.name, type=agency.type, created_at=now, updated_at=now
            )
            repo.add(session, row)
        return _agency_out(row, None)

    async def change_agency(
        self,
        actor: Principal,
        agency_id: str,
        change: AgencyChange,
        connector: ConnectorIn | None = None,
        *,
        if_match: str | None = None,
    ) -> AgencyOut:
        """Rename or retype an agency.

        ``if_match``, an ``If-Match`` header, must name the agency as it is (its
        ``agency_etag``): a change made to what it was would undo the changes since.

        Policy judges every exchange by the agency's type, so an agency with a connector
        takes a new type only if the connector announces it too: its manifest is fetched
        again and stored with the change. ``connector``, with a new type, is a connector
        replacing the registered one: it is asked instead, and registered with the new
        type. Unchanged, it stores nothing. Raises ``NotFound``, ``InvalidChange`` for a
        type the policy catalogue does not list, a bad key, or a ``connector`` without a
        new type, ``Conflict`` if the connector announces another type (or the
        registered one changed meanwhile), ``PreconditionFailed``, ``ManifestRejected``
        or ``ConnectorUnreachable``.
        """
        current = await asyncio.to_thread(self.get_agency, agency_id)
        # Checked now, so a stale change asks no connector, and again as it is stored.
        _check_agency_if_match(agency_id, current.name, current.type, if_match)
        if connector is not None and current.type == change.type:
            # Taken only to confirm a new type; dropped otherwise, it would read as
            # registered when nothing was.
            raise InvalidChange(
                "connector is taken only with a new type, to confirm it; to register or"
                f" replace {agency_id}'s connector, use PUT /v1/agencies/{agency_id}/connector"
            )
        confirmed = None
        asked = connector or current.connector
        if current.type != change.type and asked is not None:
            await asyncio.to_thread(self._check_agency_type, change.type)
            if connector is not None:
                self._check_key(connector)
            manifest = await self._manifest(asked.base_url, agency_id, asked.public_key, None)
            if manifest.agency_type != change.type:
                raise Conflict(
                    f"agency {agency_id!r} cannot become a {change.type!r} agency while its"
                    f" connector at {asked.base_url} says it is a {manifest.agency_type!r}"
                    f" agency: set the connector's agency type to {change.type!r} first,"
                    " then change the agency's type again"
                )
            registered = current.connector
            replaces = None if registered is None else (registered.base_url, registered.public_key)
            confirmed = ConnectorManifest(asked.base_url, manifest, replaces)
        return await asyncio.to_thread(
            self._change_agency, actor, agency_id, change, confirmed, if_match
        )

    @staticmethod
    def _check_key(connector: ConnectorIn) -> None:
        """Raises ``InvalidChange`` for a key that is not an Ed25519 key or does not
        match ``key_id``."""
        try:
            key_id = key_id_for(public_key_from_b64(connector.public_key))
        except KeyFileError as exc:
            raise InvalidChange(f"public_key: {exc}") from None
        if connector.key_id is not None and connector.key_id != key_id:
            raise InvalidChange(f"key_id {connector.key_id!r} is not that of the key ({key_id})")

    @_one_at_a_time
    def _change_agency(
        self,
        actor: Principal,
        agency_id: str,
        change: AgencyChange,
        confirmed: ConnectorManifest | None,
        if_match: str | None,
    ) -> AgencyOut:
        with self._db.session() as session:
            current = self._agency(session, agency_id)
            _check_agency_if_match(agency_id, current.name, current.type, if_match)
            connector = repo.connector(session, agency_id)
            if (current.name, current.type) == (change.name, change.type):
                return _agency_out(current, connector)
            retyped = current.type != change.type
            stored = None if connector is None else (connector.base_url, connector.public_key)
        self._check_agency_type(change.type)
        if retyped and stored != (confirmed.replaces if confirmed else None):
            raise Conflict(
                f"agency {agency_id!r} had its connector changed while its type was being"
                " changed; send the change again"
            )
        record_change(
            self._audit,
            Kind.REGISTRY_CHANGE,
            actor,
            action="agency_changed",
            change={"id": agency_id, **change.model_dump(mode="json")},
            counterparty_agency=agency_id,
        )
        manifest_changed = (
            retyped
            and confirmed is not None
            and self._log_connector(
                actor, agency_id, connector, confirmed.base_url, confirmed.manifest
            )
        )
        # The new type and the manifest announcing it are stored together, or neither is.
        with self._db.session(write=True) as session:
            row = self._agency(session, agency_id)
            row.name, row.type, row.updated_at = change.name, change.type, self._clock()
            if manifest_changed and confirmed is not None:
                self._put_connector(session, agency_id, confirmed.base_url, confirmed.manifest)
        return self.get_agency(agency_id)

    def _check_agency_type(self, agency_type: str) -> None:
        """Refuse a type the policy catalogue in force does not list.

        Policy names the fields a purpose may ask for per agency type: an agency of a
        type it does not know would have every exchange withheld, and no one told why.
        """
        known = self._catalogue().get("agency_types")
        if known is None:
            # A bundle from before the catalogue listed agency types: there is nothing
            # to check against, and refusing every type would stop all registration.
            return
        refuse_unknown("agency type", [agency_type], frozenset(known), "in the policy catalogue")

    @staticmethod
    def _agency(session: Session, agency_id: str) -> AgencyRow:
        row = repo.agency(session, agency_id)
        if row is None:
            raise NotFound(_UNKNOWN_AGENCY.format(agency_id))
        return row

    # -- connectors ---------------------------------------------------------------

    async def register_connector(
        self, actor: Principal, agency_id: str, connector: ConnectorIn
    ) -> ConnectorOut:
        """Register (or replace) an agency's connector after fetching its manifest.

        Raises ``NotFound``, ``InvalidChange`` for a key that is not an Ed25519 key or
        does not match ``key_id``, ``ManifestRejected`` or ``ConnectorUnreachable``.
        """
        self._check_key(connector)
        agency = await asyncio.to_thread(self.get_agency, agency_id)
        manifest = await self._manifest(
            connector.base_url, agency_id, connector.public_key, agency.type
        )
        return await asyncio.to_thread(
            self._store_connector, actor, agency_id, connector.base_url, manifest
        )

    async def check_connector(
        self, agency_id: str, connector: ConnectorIn, agency_type: str
    ) -> None:
        """Check ``connector`` as ``register_connector`` would, registering nothing: its
        key, and the manifest it serves for an agency of ``agency_type`` (registered or
        not yet). Raises ``InvalidChange``, ``ManifestRejected`` or ``ConnectorUnreachable``.
        """
        self._check_key(connector)
        await self._manifest(connector.base_url, agency_id, connector.public_key, agency_type)

    async def refresh_manifest(self, actor: Principal, agency_id: str) -> ConnectorOut:
        """Fetch the registered connector's manifest again (after it offers new fields).

        Raises ``NotFound``, ``ManifestRejected`` or ``ConnectorUnreachable``.
        """
        agency = await asyncio.to_thread(self.get_agency, agency_id)
        current = agency.connector
        if current is None:
            raise NotFound(f"agency {agency_id!r} has no connector; register one first")
        manifest = await self._manifest(
            current.base_url, agency_id, current.public_key, agency.type
        )
        return await asyncio.to_thread(
            self._store_connector, actor, agency_id, current.base_url, manifest
        )

    async def _manifest(
        self, base_url: str, agency_id: str, public_key: str, agency_type: str | None
    ) -> Manifest:
        """The connector's signed manifest, fetched and checked (``agency_type``: the
        type it must announce; None leaves that to the caller)."""
        return await fetch_manifest(
            self._http,
            base_url=base_url,
            agency_id=agency_id,
            public_key=public_key,
            audience=self._broker_name,
            agency_type=agency_type,
            consent_key_id=self._consent_key_id,
            timeout_seconds=self._timeout,
        )

    @_one_at_a_time
    def _store_connector(
        self, actor: Principal, agency_id: str, base_url: str, manifest: Manifest
    ) -> ConnectorOut:
        """Store the connector and its manifest, if either changed."""
        with self._db.session() as session:
            self._agency(session, agency_id)
            existing = repo.connector(session, agency_id)
        if not self._log_connector(actor, agency_id, existing, base_url, manifest):
            assert existing is not None  # noqa: S101 - only a stored one can be unchanged
            return _connector_out(existing)
        with self._db.session(write=True) as session:
            return _connector_out(self._put_connector(session, agency_id, base_url, manifest))

    def _log_connector(
        self,
        actor: Principal,
        agency_id: str,
        existing: ConnectorRow | None,
        base_url: str,
        manifest: Manifest,
    ) -> bool:
        """Log the connector's registration or change, if it is one; whether it is."""
        manifest_json = manifest.model_dump(mode="json")
        if (
            existing is not None
            and existing.base_url == base_url
            and existing.manifest == manifest_json
        ):
            return False
        record_change(
            self._audit,
            Kind.REGISTRY_CHANGE,
            actor,
            action="connector_registered" if existing is None else "connector_changed",
            change={"agency_id": agency_id, "base_url": base_url, "manifest": manifest_json},
            counterparty_agency=agency_id,
        )
        return True

    def _put_connector(
        self, session: Session, agency_id: str, base_url: str, manifest: Manifest
    ) -> ConnectorRow:
        """The connector's row, added or changed in ``session`` (logged already)."""
        now = self._clock()
        row = repo.connector(session, agency_id)
        if row is None:
            row = ConnectorRow(agency_id=agency_id, registered_at=now)
            repo.add(session, row)
        row.base_url, row.public_key, row.key_id = base_url, manifest.public_key, manifest.key_id
        row.manifest, row.manifest_fetched_at = manifest.model_dump(mode="json"), now
        return row

    def connectors_for_matching(self) -> list[ConnectorRecord]:
        """Every registered connector with its manifest's fields. Raises ``StoreUnavailable``."""
        with self._db.read() as connection:
            rows = repo.connector_rows(connection)
        records = []
        for row in rows:
            # Validating a manifest costs more than reading it: an unchanged one (equal
            # as stored) is parsed once.
            kept = self._manifests.get(row.agency_id)
            if kept is not None and kept[0] == row.manifest:
                parsed = kept[1]
            else:
                manifest = Manifest.model_validate(row.manifest)
                parsed = (
                    manifest.linkage_key_id,
                    tuple(
                        ManifestField(f.name, f.sensitivity.value, f.type.value)
                        for f in manifest.fields
                    ),
                )
                self._manifests[row.agency_id] = (row.manifest, parsed)
            records.append(
                ConnectorRecord(
                    agency_id=row.agency_id,
                    agency_name=row.agency_name,
                    agency_type=row.agency_type,
                    base_url=row.base_url,
                    public_key=row.public_key,
                    key_id=row.key_id,
                    linkage_key_id=parsed[0],
                    fields=parsed[1],
                )
            )
        return records

    # -- agreements ---------------------------------------------------------------

    def list_agreements(self) -> list[AgreementOut]:
        """The newest version of every agreement."""
        with self._db.session() as session:
            return [_agreement_out(row) for row in repo.latest_agreements(session)]

    def agreement_versions(self, agreement_id: str) -> list[AgreementOut]:
        """Every version of one agreement, oldest first. Raises ``NotFound``."""
        with self._db.session() as session:
            rows = repo.agreement_versions(session, agreement_id)
            if not rows:
                raise NotFound(f"no agreement {agreement_id!r}; list them at /v1/agreements")
            return [_agreement_out(row) for row in rows]

    def get_agreement(self, agreement_id: str) -> AgreementOut:
        """The newest version of one agreement. Raises ``NotFound``."""
        return self.agreement_versions(agreement_id)[-1]

    @_one_at_a_time
    def create_agreement(self, actor: Principal, agreement: AgreementCreate) -> AgreementOut:
        """Store version 1 of a new agreement.

        Raises ``Conflict`` if the id is taken, ``InvalidChange`` for an unregistered party
        or, in an active agreement, a field none of the parties' connectors offers.
        """
        with self._db.session() as session:
            if repo.agreement_versions(session, agreement.id):
                raise Conflict(f"agreement {agreement.id!r} exists; change it with PUT")
            self._check_parties(session, agreement.parties)
            self._check_terms(agreement)
            self._check_fields(session, agreement)
        return self._store_version(actor, agreement.id, 1, agreement, "agreement_created")

    @_one_at_a_time
    def change_agreement(
        self,
        actor: Principal,
        agreement_id: str,
        terms: AgreementIn,
        *,
        if_match: str | None = None,
    ) -> AgreementOut:
        """Store ``terms`` as the next version; earlier versions stay as they were.

        Unchanged terms, whatever the order of their lists, store and log nothing.
        ``if_match``, an ``If-Match`` header, must name the newest version: terms made
        to an older one would undo the changes since, unseen. Raises ``NotFound``,
        ``PreconditionFailed`` or ``InvalidChange``.
        """
        with self._db.session() as session:
            versions = repo.agreement_versions(session, agreement_id)
            if not versions:
                raise NotFound(f"no agreement {agreement_id!r}; create it with POST")
            latest = versions[-1]
            if if_match is not None and not if_match_names(
                if_match, agreement_etag(latest.version)
            ):
                raise PreconditionFailed(
                    f"agreement {agreement_id!r} is at version {latest.version} now, not the"
                    f" version If-Match names: read it again (GET /v1/agreements/{agreement_id}),"
                    f" make your change to version {latest.version} and send it with"
                    f" If-Match: {agreement_etag(latest.version)}",
                    current_version=latest.version,
                )
            if _agreement_terms(latest) == terms.model_dump(mode="json"):
                return _agreement_out(latest)
            self._check_parties(session, terms.parties)
            self._check_terms(terms)
            self._check_fields(session, terms)
        return self._store_version(
            actor, agreement_id, latest.version + 1, terms, "agreement_changed"
        )

    def _check_parties(self, session: Session, parties: list[str]) -> None:
        unknown = [p for p in parties if repo.agency(session, p) is None]
        if unknown:
            raise InvalidChange(f"parties not registered as agencies: {', '.join(unknown)}")

    def _check_terms(self, terms: AgreementIn) -> None:
        """Refuse a purpose or legal basis the policy catalogue in force does not know.

        A suspended or ended agreement keeps what it had, even if the catalogue has
        since dropped it.
        """
        if terms.status in ("suspended", "ended"):
            return
        catalogue = self._catalogue()
        purposes = frozenset(catalogue.get("purposes", {}))
        bases = frozenset({"consent", *catalogue.get("gateways", {})})
        refuse_unknown("purpose", terms.purposes, purposes, "in the policy catalogue")
        refuse_unknown(
            "legal basis",
            terms.legal_bases,
            bases,
            "'consent' or a statutory gateway in the policy catalogue",
        )

    @staticmethod
    def _check_fields(session: Session, terms: AgreementIn) -> None:
        """Refuse, in an active agreement, a field no party's connector offers.

        What a party offers is known from its connector's manifest. A draft may name
        fields before they are offered, and a suspended or ended one keeps the fields it
        had; a registry with no connector for any party yet has nothing to check against.
        """
        if terms.status != "active":
            return
        offered: set[str] = set()
        connected = []
        for party in terms.parties:
            row = repo.connector(session, party)
            if row is not None:
                connected.append(party)
                offered.update(f.name for f in Manifest.model_validate(row.manifest).fields)
        missing = [name for name in terms.fields if name not in offered]
        if not connected or not missing:
            return
        named = []
        for name in missing:
            close = difflib.get_close_matches(name, sorted(offered), n=1, cutoff=0.8)
            named.append(f"{name} (did you mean {close[0]}?)" if close else name)
        unconnected = [party for party in terms.parties if party not in connected]
        unknown = f"; no connector registered for {', '.join(unconnected)}" if unconnected else ""
        raise InvalidChange(
            f"fields no party offers: {', '.join(named)} (parties {', '.join(terms.parties)}"
            f"{unknown}); name fields their connectors' manifests list, or make it a draft"
        )

    def _store_version(
        self, actor: Principal, agreement_id: str, version: int, terms: AgreementIn, action: str
    ) -> AgreementOut:
        body = terms.model_dump(mode="json", exclude={"id"})
        record_change(
            self._audit,
            Kind.REGISTRY_CHANGE,
            actor,
            action=action,
            change={"id": agreement_id, "version": version, **body},
            # The change is only digested: these say which agreement it was made to.
            names=(f"agreement:{agreement_id}", f"version:{version}"),
        )
        row = AgreementRow(
            id=agreement_id,
            version=version,
            parties=list(terms.parties),
            purposes=list(terms.purposes),
            legal_bases=list(terms.legal_bases),
            fields=list(terms.fields),
            valid_from=terms.valid_from,
            valid_to=terms.valid_to,
            status=terms.status,
            created_at=self._clock(),
            created_by=actor.subject,
        )
        with self._db.session(write=True) as session:
            repo.add(session, row)
        with self._agreements_lock:
            self._checked_at = None
        return _agreement_out(row)

    def agreements_between(
        self, requester_agency: str, provider_agency: str, at: datetime
    ) -> list[SharingAgreement]:
        """The agreements naming both agencies, each in the version in force at ``at``.

        The version in force is the newest one stored by ``at``. Every status is
        returned (a suspended agreement is for policy to refuse and explain). Raises
        ``StoreUnavailable``.
        """
        in_force: dict[str, SharingAgreement] = {}
        for version, stored_at in self._agreement_versions():
            if stored_at <= at:
                in_force[version.id] = version  # versions come oldest first
        return [
            agreement
            for agreement in in_force.values()
            if requester_agency in agreement.parties and provider_agency in agreement.parties
        ]

    def _agreement_versions(self) -> tuple[tuple[SharingAgreement, datetime], ...]:
        with self._agreements_lock:
            checked = self._checked_at
            if checked is not None and self._monotonic() - checked < self._recheck:
                return self._agreements[1]
        checked_at = self._monotonic()
        with self._db.read() as connection:
            count = repo.agreement_row_count(connection)
        with self._agreements_lock:
            if self._agreements[0] == count:
                self._checked_at = checked_at
                return self._agreements[1]
        with self._db.session() as session:
            rows = repo.all_agreement_versions(session)
            parsed = tuple(
                (
                    SharingAgreement(
                        id=row.id,
                        version=row.version,
                        parties=list(row.parties),
                        purposes=list(row.purposes),
                        legal_bases=list(row.legal_bases),
                        fields=list(row.fields),
                        valid_from=row.valid_from,
                        valid_to=row.valid_to,
                        status=row.status,
                    ),
                    row.created_at,
                )
                for row in rows
            )
        with self._agreements_lock:
            self._agreements, self._checked_at = (len(parsed), parsed), checked_at
        return parsed
