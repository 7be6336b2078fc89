"""What the family query needs from the rest of the broker, as narrow interfaces.

The query service is built with these passed in, so tests can give it small fakes and
the application gives it the registry, the consent register and the link register.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from policies.model import ConsentRecord, FamilyDecision, FamilyQueryInput, SharingAgreement

__all__ = [
    "ConnectorInfo",
    "ConsentReader",
    "FieldInfo",
    "LinkRegister",
    "PolicyDecider",
    "RegistryReader",
]


@dataclass(frozen=True, slots=True)
class FieldInfo:
    name: str
    sensitivity: str


@dataclass(frozen=True, slots=True)
class ConnectorInfo:
    """A registered agency and its connector, as the query flow needs it."""

    agency_id: str
    agency_name: str
    agency_type: str
    base_url: str
    fields: Sequence[FieldInfo]


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


class PolicyDecider(Protocol):
    def decide(self, query: FamilyQueryInput) -> FamilyDecision: ...

    @property
    def digest(self) -> str: ...
