"""The seams of the connector service: what it needs from the source, policy and audit.

The service holds no SQL, no Rego and no Merkle tree. It is given an ``AgencySource``
(reads the agency's own system and matches people), a ``LocalPolicy`` (the agency's
last word) and a ``LocalAudit`` (its own signed record). Each is a small protocol so
that tests can pass a real implementation or a small fake.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from connectors.protocol.messages import (
    FactValue,
    FieldOffer,
    MatchCandidate,
    Refusal,
    Subject,
)

__all__ = [
    "AgencySource",
    "AuditEvent",
    "AuditKind",
    "FetchResult",
    "LocalAudit",
    "LocalPolicy",
    "PolicyInput",
    "PolicyPerson",
    "PolicyVerdict",
    "WithheldByPolicy",
]


# Per known ref, per field: the value and when the source last knew it to be so.
FetchResult = dict[str, dict[str, tuple[FactValue, dt.datetime]]]


class AgencySource(Protocol):
    """The agency's own system, read per request. Every method may block.

    Implementations raise ``connectors.errors.SourceError`` (or let a driver error
    escape, which the service translates in one place).
    """

    def offered_fields(self) -> Sequence[FieldOffer]:
        """The canonical fields this agency can provide (no I/O)."""
        ...

    def match(
        self, subject: Subject, *, include_household: bool, max_candidates: int
    ) -> Sequence[MatchCandidate]:
        """Candidate records of ``subject``, best first, with household members."""
        ...

    def flags(self, refs: list[str]) -> dict[str, frozenset[str]]:
        """Protective flags (sealed, refuge, investigation, ...) of each known ref.

        A ref the agency does not know is absent from the result.
        """
        ...

    def fetch(self, refs: list[str], fields: list[str]) -> FetchResult:
        """The named fields of each known ref; unknown refs are absent."""
        ...


@dataclass(frozen=True, slots=True)
class PolicyPerson:
    ref: str
    flags: frozenset[str]
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyInput:
    """What the local policy sees about one exchange."""

    operation: str
    agency_id: str
    requester_agency: str
    requester_role: str | None
    purpose: str
    legal_basis: str | None
    break_glass: bool
    persons: tuple[PolicyPerson, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "operation": self.operation,
            "agency": self.agency_id,
            "requester": {"agency": self.requester_agency, "role": self.requester_role},
            "purpose": self.purpose,
            "legal_basis": self.legal_basis,
            "break_glass": self.break_glass,
            "persons": [
                {"ref": p.ref, "flags": sorted(p.flags), "fields": list(p.fields)}
                for p in self.persons
            ],
        }


@dataclass(frozen=True, slots=True)
class WithheldByPolicy:
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class PolicyVerdict:
    """The local policy's answer: a whole-request refusal, or per-person and per-field ones.

    ``bundle_digest`` names the exact policy text that decided, for the audit log.
    """

    bundle_digest: str
    refusal: Refusal | None = None
    persons: Mapping[str, Refusal] = field(default_factory=dict)
    fields: Mapping[str, Mapping[str, WithheldByPolicy]] = field(default_factory=dict)


class LocalPolicy(Protocol):
    """The agency's own policy. Raises ``LocalPolicyError`` if it cannot decide."""

    def decide(self, request: PolicyInput) -> PolicyVerdict: ...


class AuditKind(StrEnum):
    MATCH = "match"
    FETCH = "fetch"
    REFUSAL = "refusal"
    REJECTION = "envelope_rejected"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One exchange that crossed the agency's boundary, as the connector records it.

    It holds no personal data: local references are the agency's own opaque ids, and
    the request and response are kept as digests.
    """

    kind: AuditKind
    at: dt.datetime
    counterparty: str
    decision: str
    query_id: str | None = None
    exchange_id: str | None = None
    requester_agency: str | None = None
    purpose: str | None = None
    legal_basis: str | None = None
    reasons: tuple[str, ...] = ()
    fields_released: tuple[str, ...] = ()
    refs: tuple[str, ...] = ()
    request_digest: str | None = None
    response_digest: str | None = None
    decision_digest: str | None = None
    policy_digest: str | None = None


class LocalAudit(Protocol):
    """The connector's own append-only, signed log.

    ``record`` returns only once the event is durable, with its index; it raises
    ``LocalAuditUnavailable`` when it cannot record.
    """

    def record(self, event: AuditEvent) -> int: ...
