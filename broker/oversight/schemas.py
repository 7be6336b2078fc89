"""The IG officers' API models. Identifiers travel in request bodies, never in URLs."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from audit.entry import Decision, Kind
from broker._instants import WrittenTime
from broker._text import LINES, ONE_LINE
from broker.consent.schemas import Identifier

__all__ = [
    "AnomalyFlag",
    "AnomalyReport",
    "AuditEntryView",
    "AuditFinding",
    "AuditPage",
    "AuditSearch",
    "BreakGlassItem",
    "BreakGlassQueue",
    "CheckpointView",
    "ConsistencyCheckIn",
    "ConsistencyView",
    "Digests",
    "EntryWithProof",
    "ErasureIn",
    "ErasureOut",
    "ErasureView",
    "Identifier",
    "InclusionProofView",
    "Outcome",
    "ReviewIn",
    "ReviewView",
    "SubjectAccessIn",
    "SubjectAccessReport",
    "SubjectAccessRow",
]

Outcome = Literal["justified", "not_justified", "escalated"]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
_HASH = "9f2c5e0a4b7d1c3e8f6a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e"
_ENTRY_EXAMPLE: dict[str, Any] = {
    "index": 1207,
    "time": "2026-11-21T10:42:05.118000Z",
    "kind": "fetch",
    "actor": "dev:council:sam.caseworker",
    "actor_agency": "council",
    "counterparty_agency": "police",
    "purpose": "early_help_assessment",
    "legal_basis": "consent",
    "decision": "allow",
    "reasons": ["ok"],
    "fields_released": ["police.missing_episodes_12m"],
    "subjects": [_HASH],
    "digests": {"request": _HASH, "response": _HASH, "policy": _HASH},
    "query_id": "4be2d0c5a3f84a0f9d1e7c2b6a5f3e10",
    "exchange_id": None,
    "erases": None,
    "private": {"justification": "Referral from school nurse", "case_reference": "EH-2231"},
    "erasure": None,
    "leaf_hash": _HASH,
}


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


_AGENCY_ID = re.compile(r"[a-z][a-z0-9_-]{1,62}")


def _agency_id(value: str) -> str:
    # Agency ids are lower case: "Police" can only mean "police", and would match nothing.
    value = value.strip().lower()
    if not _AGENCY_ID.fullmatch(value):
        raise ValueError(
            "give an agency id such as 'council' or 'police' (GET /v1/agencies lists them),"
            " not the agency's name"
        )
    return value


AgencyFilter = Annotated[Name, AfterValidator(_agency_id)]


class AuditSearch(_In):
    """Filters on the audit log, all optional and combined with AND."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "identifiers": [{"kind": "nhs_number", "value": "943 476 5919"}],
                    "counterparty_agency": "police",
                    "since": "2026-11-01T00:00:00Z",
                    "limit": 20,
                },
                {"actor": "dev:council:sam.caseworker", "kind": "break_glass"},
            ]
        },
    )

    actor: Name | None = Field(default=None, description="The caseworker's token subject.")
    identifiers: list[Identifier] | None = Field(
        default=None,
        # An empty list would name nobody, and the search would return every entry.
        min_length=1,
        max_length=20,
        description=(
            "A person: entries filed under ANY of these identifiers are returned. At least"
            " one; leave the member out to search without naming a person."
        ),
    )
    actor_agency: AgencyFilter | None = Field(
        default=None, description="The agency that asked, by id (any case)."
    )
    counterparty_agency: AgencyFilter | None = Field(
        default=None, description="The agency that was asked, by id (any case)."
    )
    purpose: Name | None = None
    kind: Kind | None = None
    decision: Decision | None = None
    query_id: Name | None = None
    since: WrittenTime | None = Field(default=None, description="Entries at or after this.")
    until: WrittenTime | None = Field(default=None, description="Entries before this.")
    # Strict: a JSON true, 1.0 or "1" is not a cursor or a limit, however lax parsing
    # would read it.
    cursor: int | None = Field(
        default=None,
        strict=True,
        ge=0,
        # An index is a 64-bit integer in every store; a larger cursor is not one we gave.
        le=2**63 - 1,
        description="The previous page's next_cursor, for the next page.",
    )
    limit: int = Field(default=50, strict=True, ge=1, le=200)


class Digests(BaseModel):
    """``sha256:<hex>`` digests of the signed request, the answer, and the policy bundle."""

    request: str | None = None
    response: str | None = None
    policy: str | None = None


class ErasureView(BaseModel):
    """Why an entry's private values are gone."""

    erased_at: datetime
    erased_by: str
    reason: str
    erasure_index: int
    text: str = Field(description="e.g. 'erased on 2026-11-21 by dev:council:ig.officer'")


class AuditEntryView(BaseModel):
    """One audit entry as its leaf says. Fields released are names only: no values."""

    model_config = ConfigDict(json_schema_extra={"examples": [_ENTRY_EXAMPLE]})

    index: int
    time: datetime
    kind: str
    actor: str
    actor_agency: str | None = None
    counterparty_agency: str | None = None
    purpose: str | None = None
    legal_basis: str | None = None
    decision: str | None = None
    reasons: list[str] = Field(default_factory=list)
    fields_released: list[str] = Field(default_factory=list)
    subjects: list[str] = Field(default_factory=list, description="Keyed subject references.")
    digests: Digests
    query_id: str | None = None
    exchange_id: str | None = None
    erases: int | None = None
    private: dict[str, str] = Field(
        default_factory=dict,
        description="Justification, case reference and other free text; empty once erased.",
    )
    erasure: ErasureView | None = None
    leaf_hash: str


class AuditPage(BaseModel):
    """Entries newest first; send ``next_cursor`` as ``cursor`` for the next page."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"entries": [_ENTRY_EXAMPLE], "next_cursor": 1207}]}
    )

    entries: list[AuditEntryView]
    next_cursor: int | None


class InclusionProofView(BaseModel):
    """Everything needed to check offline that an entry is in the signed tree."""

    leaf: str = Field(description="The leaf exactly as hashed (canonical JSON).")
    leaf_hash: str = Field(description="SHA-256(0x00 || leaf), hex (RFC 9162 §2.1.1).")
    index: int
    tree_size: int
    root_hash: str
    inclusion_proof: list[str] = Field(description="Audit path, hex, leaf to root.")
    checkpoint: str = Field(description="The signed checkpoint note the root comes from.")


class EntryWithProof(BaseModel):
    """One entry and its inclusion proof against the latest signed checkpoint."""

    entry: AuditEntryView
    proof: InclusionProofView


class CheckpointView(BaseModel):
    """The latest signed tree head."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "origin": "junction.local/audit",
                    "tree_size": 1208,
                    "root_hash": _HASH,
                    "note": "junction.local/audit\n1208\nnyxeCkt9HD6PaitMbY4PGjO1x9Hh8qS2yNDi9Ku"
                    "MDS4=\n\n— junction.local/audit AbCd...\n",
                    "verifier_key": "junction.local/audit+1a2b3c4d+AXk...",
                }
            ]
        }
    )

    origin: str
    tree_size: int
    root_hash: str
    note: str
    verifier_key: str = Field(description="The log key, to check the note's signature.")


class ConsistencyCheckIn(_In):
    """A checkpoint note an officer kept earlier, pasted back to check the log since."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "checkpoint": "junction.local/audit\n1000\nq1B2...=\n\n"
                    "— junction.local/audit AbCd...\n"
                }
            ]
        },
    )

    checkpoint: Annotated[str, StringConstraints(min_length=10, max_length=20_000)]


class AuditFinding(BaseModel):
    """The first problem the verifier found, as ``junction audit verify`` names it."""

    kind: str = Field(description="The tamper kind, e.g. entry_altered; see the IG guide.")
    index: int | None = Field(description="The entry concerned, if it is one entry.")
    tree_size: int | None = Field(description="The checkpoint concerned, by its size.")
    detail: str


class ConsistencyView(BaseModel):
    """Proof that the tree of ``from_size`` entries is a prefix of the current one."""

    from_size: int
    to_size: int
    from_root: str | None = Field(default=None, description="Set when a checkpoint was pasted.")
    to_root: str
    proof: list[str]
    checkpoint: str = Field(description="The current signed checkpoint (the newer tree).")
    consistent: bool | None = Field(
        default=None,
        description="Whether the pasted checkpoint's tree is a prefix of the current one,"
        " with every entry recomputed and no problem found; null when only a size was given"
        " (verify the proof yourself).",
    )
    prefix_intact: bool | None = Field(
        default=None,
        description="Whether the log's first from_size entries still rebuild the pasted"
        " checkpoint's root; null when only a size was given.",
    )
    finding: AuditFinding | None = Field(
        default=None, description="The first problem found, when the log did not verify."
    )
    detail: str


class SubjectAccessIn(_In):
    """The person's identifiers; every entry filed under any of them is reported."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "identifiers": [
                        {"kind": "nhs_number", "value": "943 476 5919"},
                        {"kind": "local_ref", "value": "police:P-2231"},
                    ]
                }
            ]
        },
    )

    identifiers: list[Identifier] = Field(min_length=1, max_length=20)
    since: WrittenTime | None = None
    until: WrittenTime | None = None


class SubjectAccessRow(BaseModel):
    """One access: who, when, which agency, why, and which fields (names only)."""

    index: int
    time: datetime
    what: str = Field(description="The kind of access, in words.")
    kind: str
    who: str
    who_agency: str | None
    agency: str | None = Field(description="The agency whose records were asked about.")
    purpose: str | None
    legal_basis: str | None
    decision: str | None
    fields_released: list[str]
    query_id: str | None


class SubjectAccessReport(BaseModel):
    """Every recorded access to a person's data, oldest first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "generated_at": "2026-11-21T12:00:00Z",
                    "generated_by": "dev:council:ivy.officer",
                    "identifiers": ["nhs_number ending 5919"],
                    "tree_size": 1208,
                    "accesses": [
                        {
                            "index": 1207,
                            "time": "2026-11-21T10:42:05.118000Z",
                            "what": "records fetched",
                            "kind": "fetch",
                            "who": "dev:council:sam.caseworker",
                            "who_agency": "council",
                            "agency": "police",
                            "purpose": "early_help_assessment",
                            "legal_basis": "consent",
                            "decision": "allow",
                            "fields_released": ["police.missing_episodes_12m"],
                            "query_id": "4be2d0c5a3f84a0f9d1e7c2b6a5f3e10",
                        }
                    ],
                    "by_agency": {"police": 1},
                }
            ]
        }
    )

    generated_at: datetime
    generated_by: str
    identifiers: list[str] = Field(description="The identifiers searched, values masked.")
    tree_size: int | None
    accesses: list[SubjectAccessRow]
    by_agency: dict[str, int] = Field(description="How often each agency was asked about them.")


class ReviewIn(_In):
    """An IG officer's finding on one break-glass use."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "outcome": "justified",
                    "note": "Child at immediate risk; manager confirmed by phone at 02:10.",
                }
            ]
        },
    )

    outcome: Outcome
    note: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), LINES
    ]


class ReviewView(BaseModel):
    entry_index: int
    outcome: Outcome
    reviewed_by: str
    reviewer_agency: str
    reviewed_at: datetime
    review_entry: int = Field(description="The access_review audit entry recording it.")


class ErasureIn(_In):
    """Why an entry's private values are to be deleted. Kept in the log in clear."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "Court order 2026/117"}]}
    )

    reason: Annotated[Name, ONE_LINE] = Field(
        description="e.g. the court order or request it answers; it must hold no personal data."
    )


class ErasureOut(BaseModel):
    erased_index: int
    erasure_index: int = Field(description="The erasure audit entry recording it.")
    erased_by: str
    reason: str


class BreakGlassItem(BaseModel):
    entry: AuditEntryView
    review: ReviewView | None


class BreakGlassQueue(BaseModel):
    """Break-glass uses, newest first; send ``next_cursor`` as ``cursor`` for older ones."""

    items: list[BreakGlassItem]
    next_cursor: int | None = None


class AnomalyFlag(BaseModel):
    """One pattern worth a look, with the entries that show it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "rule": "out_of_hours",
                    "actor": "dev:council:sam.caseworker",
                    "actor_agency": "council",
                    "evidence": [1180, 1207],
                    "reason": "2 queries outside 07:00-20:00 Europe/London on weekdays",
                    "window_start": "2026-11-14T00:00:00Z",
                    "window_end": "2026-11-21T12:00:00Z",
                }
            ]
        }
    )

    rule: Literal[
        "volume",
        "out_of_hours",
        "repeated_no_match",
        "frequent_break_glass",
        "officer_look_ups",
        "consent_look_ups",
    ]
    actor: str
    actor_agency: str | None
    evidence: list[int] = Field(description="Indexes of the entries that show it.")
    reason: str
    window_start: datetime
    window_end: datetime


class AnomalyReport(BaseModel):
    since: datetime
    until: datetime
    thresholds: dict[str, float | int | str]
    flags: list[AnomalyFlag]
