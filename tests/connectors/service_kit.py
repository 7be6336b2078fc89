"""Factories for connector service tests: real keys, real Rego, small fakes at seams."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from connectors.local_policy import RegoLocalPolicy
from connectors.protocol.envelope import KeyRing, ReplayCache, Signer, Verifier
from connectors.protocol.keys import KeyPair
from connectors.protocol.messages import (
    FactValue,
    FetchPerson,
    FetchRequest,
    FieldOffer,
    FieldType,
    HouseholdMember,
    MatchCandidate,
    MatchRequest,
    Sensitivity,
    Subject,
)
from connectors.service import (
    AgencyIdentity,
    AuditEvent,
    CheckpointGuard,
    ConnectorService,
    LocalAudit,
    LocalPolicy,
    create_connector_app,
)

AGENCIES = Path(__file__).resolve().parents[2] / "connectors" / "agencies"
AS_OF = dt.datetime(2026, 11, 1, 9, 30, tzinfo=dt.UTC)

POLICE_FIELDS = (
    FieldOffer(
        name="police.domestic_abuse_incidents_12m",
        type=FieldType.INTEGER,
        sensitivity=Sensitivity.CRIMINAL_OFFENCE,
    ),
    FieldOffer(
        name="police.missing_episodes_12m",
        type=FieldType.INTEGER,
        sensitivity=Sensitivity.ORDINARY,
    ),
    FieldOffer(
        name="police.callouts_12m", type=FieldType.INTEGER, sensitivity=Sensitivity.ORDINARY
    ),
)


@dataclass
class Person:
    ref: str
    given_name: str
    family_name: str
    values: dict[str, FactValue]
    flags: frozenset[str] = frozenset()
    household: list[tuple[str, str]] = field(default_factory=list)


class MemorySource:
    """An agency source held in memory that remembers every read it was asked for."""

    def __init__(self, people: Sequence[Person], offers: Sequence[FieldOffer]) -> None:
        self.people = {p.ref: p for p in people}
        self.offers = list(offers)
        self.reads: list[tuple[str, list[str], list[str]]] = []
        self.fail_with: Exception | None = None

    def offered_fields(self) -> Sequence[FieldOffer]:
        return self.offers

    def match(
        self, subject: Subject, *, include_household: bool, max_candidates: int
    ) -> Sequence[MatchCandidate]:
        self._maybe_fail()
        found = [
            p
            for p in self.people.values()
            if p.family_name.lower() == subject.family_name.lower()
            and p.given_name.lower() == subject.given_name.lower()
        ][:max_candidates]
        self.reads.append(("match", [p.ref for p in found], []))
        return [
            MatchCandidate(
                ref=p.ref,
                score=0.99,
                match_weight=12.5,
                agreements={"given_name": "exact", "family_name": "exact"},
                tokens={"family_name": ["tok-" + p.family_name.lower()]},
                household=[
                    HouseholdMember(ref=ref, relationship=rel, tokens={"given_name": ["t"]})
                    for ref, rel in p.household
                ]
                if include_household
                else [],
            )
            for p in found
        ]

    def flags(self, refs: list[str]) -> dict[str, frozenset[str]]:
        self._maybe_fail()
        self.reads.append(("flags", list(refs), []))
        return {ref: self.people[ref].flags for ref in refs if ref in self.people}

    def fetch(
        self, refs: list[str], fields: list[str]
    ) -> dict[str, dict[str, tuple[FactValue, dt.datetime]]]:
        self._maybe_fail()
        self.reads.append(("fetch", list(refs), list(fields)))
        return {
            ref: {
                name: (self.people[ref].values[name], AS_OF)
                for name in fields
                if name in self.people[ref].values
            }
            for ref in refs
            if ref in self.people
        }

    def _maybe_fail(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with


class MemoryAudit:
    """A local audit seam that keeps events in a list, in order."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> int:
        self.events.append(event)
        return len(self.events) - 1


def police_people() -> list[Person]:
    return [
        Person(
            "pol-0001-ann",
            "Ann",
            "O'Brien",
            {
                "police.domestic_abuse_incidents_12m": 2,
                "police.missing_episodes_12m": 0,
                "police.callouts_12m": 5,
            },
            household=[("pol-0002-bob", "partner"), ("pol-0003-cat", "child")],
        ),
        Person(
            "pol-0002-bob",
            "Bob",
            "O'Brien",
            {"police.domestic_abuse_incidents_12m": 1, "police.callouts_12m": 3},
            flags=frozenset({"live_investigation"}),
        ),
        Person("pol-0003-cat", "Cat", "O'Brien", {"police.missing_episodes_12m": 1}),
    ]


class Clock:
    """A settable Unix-seconds clock shared by broker and connector."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    app: FastAPI
    service: ConnectorService
    source: MemorySource
    audit: MemoryAudit
    broker: Signer
    broker_key: KeyPair
    agency_key: KeyPair
    clock: Clock
    agency_id: str

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://connector"
        )

    def agency_keyring(self) -> KeyRing:
        ring = KeyRing()
        ring.add(self.agency_id, self.agency_key.public_key)
        return ring

    def open_answer(self, raw: bytes, expect: type[Any]) -> Any:
        """Verify the connector's signed answer as the broker would."""
        verifier = Verifier(self.agency_keyring(), "broker", clock=self.clock)
        return verifier.open(raw, expect).message


def police_policy() -> LocalPolicy:
    return RegoLocalPolicy.from_file(AGENCIES / "police.rego", package="junction.local.police")


def build_rig(
    *,
    source: MemorySource | None = None,
    policy: LocalPolicy | None = None,
    checkpoints: CheckpointGuard | None = None,
    agency_id: str = "police",
    source_timeout_seconds: float = 5.0,
    audit: LocalAudit | None = None,
) -> Rig:
    clock = Clock()
    broker_key, agency_key = KeyPair.generate(), KeyPair.generate()
    ring = KeyRing()
    ring.add("broker", broker_key.public_key)
    source = source or MemorySource(police_people(), POLICE_FIELDS)
    memory = MemoryAudit()
    service = ConnectorService(
        agency=AgencyIdentity(agency_id, "Northshire Police", "police", "linkage-2026"),
        signer=Signer(agency_key, agency_id, clock=clock),
        verifier=Verifier(ring, agency_id, replay_cache=ReplayCache(), clock=clock),
        source=source,
        policy=policy or police_policy(),
        audit=audit or memory,
        checkpoints=checkpoints,
        clock=clock,
        source_timeout_seconds=source_timeout_seconds,
    )
    app = create_connector_app(service, broker_name="broker")
    return Rig(
        app=app,
        service=service,
        source=source,
        audit=memory,
        broker=Signer(broker_key, "broker", clock=clock),
        broker_key=broker_key,
        agency_key=agency_key,
        clock=clock,
        agency_id=agency_id,
    )


_ids = itertools.count(1)


def match_request(**overrides: Any) -> MatchRequest:
    values: dict[str, Any] = {
        "query_id": f"q-{next(_ids)}",
        "requester_agency": "childrens_social_care",
        "purpose": "child_protection_enquiry",
        "subject": Subject(given_name="Ann", family_name="O'Brien"),
    }
    values.update(overrides)
    return MatchRequest(**values)


def fetch_request(persons: dict[str, list[str]], **overrides: Any) -> FetchRequest:
    values: dict[str, Any] = {
        "query_id": f"q-{next(_ids)}",
        "exchange_id": uuid.uuid4().hex,
        "requester_agency": "childrens_social_care",
        "requester_role": "social_worker",
        "purpose": "child_protection_enquiry",
        "legal_basis": "ca1989_s47",
        "decision_digest": "sha256:" + "ab" * 32,
        "persons": [FetchPerson(ref=ref, fields=fields) for ref, fields in persons.items()],
    }
    values.update(overrides)
    return FetchRequest(**values)
