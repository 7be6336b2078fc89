"""What the family query needs from the rest of the broker, as narrow interfaces.

The query service is built with these passed in, so tests can give it small fakes and
the application gives it the registry, the consent register and the link register.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from broker.queries.schemas import FamilyView
from policies.model import ConsentRecord, FamilyDecision, FamilyQueryInput, SharingAgreement

__all__ = [
    "BundleDecider",
    "ConnectorInfo",
    "ConsentReader",
    "FieldInfo",
    "LinkRegister",
    "PolicyDecider",
    "QueryMetrics",
    "QueryRecords",
    "RegistryReader",
]


class FieldInfo(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def sensitivity(self) -> str: ...


class ConnectorInfo(Protocol):
    """A registered agency and its connector, as the query flow needs it."""

    @property
    def agency_id(self) -> str: ...

    @property
    def agency_name(self) -> str: ...

    @property
    def agency_type(self) -> str: ...

    @property
    def base_url(self) -> str: ...

    @property
    def public_key(self) -> str:
        """Base64 raw Ed25519 key the connector's answers must be signed with."""
        ...

    @property
    def fields(self) -> Sequence[FieldInfo]: ...


class RegistryReader(Protocol):
    def connectors_for_matching(self) -> Sequence[ConnectorInfo]: ...

    def agreements_between(
        self, requester_agency: str, provider_agency: str, at: dt.datetime
    ) -> list[SharingAgreement]: ...

    def agency_type(self, agency_id: str) -> str: ...


class ConsentReader(Protocol):
    def consents_for(
        self, person_keys: Collection[str], purpose: str, at: dt.datetime
    ) -> dict[str, list[ConsentRecord]]: ...

    def restrictions_for(
        self, person_keys: Collection[str], purpose: str, at: dt.datetime
    ) -> dict[str, set[str]]: ...


class LinkRegister(Protocol):
    def decisions_for(
        self, keys: Collection[str]
    ) -> tuple[set[frozenset[str]], set[frozenset[str]]]:
        """(confirmed, rejected) pairs among ``keys``."""
        ...

    def remember_uncertain(
        self, query_id: str, actor: str, pairs: Sequence[tuple[str, str, float]]
    ) -> None: ...

    def uncertain_pair(self, query_id: str, actor: str, link_id: str) -> tuple[str, str] | None: ...

    def decide(self, left: str, right: str, decision: str, actor: str) -> None: ...


class QueryRecords(Protocol):
    def record_query(self, actor: str, agency: str, view: FamilyView) -> None:
        """Keep the answer's summary in the caller's query history."""
        ...


class BundleDecider(Protocol):
    async def decide(self, query: FamilyQueryInput) -> FamilyDecision: ...


class PolicyDecider(Protocol):
    def pinned(self) -> AbstractAsyncContextManager[BundleDecider]:
        """Decisions that all come from the bundle in force at the first of them."""
        ...

    @property
    def digest(self) -> str: ...

    @property
    def catalogue(self) -> Mapping[str, Any]:
        """The catalogue of the bundle in force (purposes, conditions, reasons, ...)."""
        ...


class QueryMetrics(Protocol):
    """Where the flow reports what it measures; the application's is Prometheus."""

    def query_finished(self, status: str) -> None: ...

    def exchange(self, agency_id: str, kind: str, status: str, seconds: float) -> None: ...

    def policy_decided(self, seconds: float) -> None: ...

    def audit_appended(self, seconds: float) -> None: ...
