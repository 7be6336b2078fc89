"""The typed input and decision of a family query.

``FamilyQueryInput`` is what the broker knows when it asks: who is asking, for which
purpose and on which legal basis, and for each provider agency the agreements between the
requester and that provider only, the fields it offers, and the people it holds with their
consent records. ``FamilyDecision`` is the answer: the submit check plus one
``ExchangeDecision`` per (agency, person), each naming what may be asked for, what is
withheld and why, the obligations that come with it, and the agreement relied on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

__all__ = [
    "AgreementRef",
    "BreakGlass",
    "ConsentRecord",
    "ConsentState",
    "ExchangeDecision",
    "FamilyDecision",
    "FamilyQueryInput",
    "LegalBasis",
    "Obligation",
    "OfferedField",
    "Person",
    "Provider",
    "QueryRequest",
    "Reason",
    "Requester",
    "SharingAgreement",
    "SubmitDecision",
    "Tier",
    "WithheldField",
]


def _rfc3339(value: datetime) -> str:
    # Written with "+00:00", never "Z": rego-cpp's time.parse_rfc3339_ns rejects "Z".
    return value.astimezone(UTC).isoformat()


Instant = Annotated[AwareDatetime, PlainSerializer(_rfc3339, return_type=str)]
ConsentState = Literal["given", "withdrawn", "expired", "refused", "not_sought"]
Sensitivity = Literal["ordinary", "special_category", "criminal_offence"]
LegalBasis = Literal["consent", "public_task"]
Tier = Literal["full", "known_to_service", "none"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Requester(_Model):
    agency_id: str
    agency_type: str
    role: str


class BreakGlass(_Model):
    reason_code: str
    text: str
    started_at: Instant


class QueryRequest(_Model):
    requester: Requester
    purpose: str
    legal_basis: LegalBasis
    gateway: str | None = None
    case_reference: str | None = None
    justification: str = ""
    conditions: list[str] = Field(
        default_factory=list, description="Art 9 / Art 10 conditions the request relies on."
    )
    consent_not_sought_reason: str | None = None
    override_reason: str | None = Field(
        default=None, description="Why a refusal or withdrawal of consent is overridden."
    )
    break_glass: BreakGlass | None = None
    time: Instant


class SharingAgreement(_Model):
    id: str
    version: int = Field(ge=1)
    parties: list[str]
    purposes: list[str]
    legal_bases: list[str] = Field(description="'consent' and/or statutory gateway ids.")
    fields: list[str]
    valid_from: Instant
    valid_to: Instant | None = None
    status: Literal["draft", "active", "suspended", "ended"]


class OfferedField(_Model):
    name: str
    sensitivity: Sensitivity = "ordinary"


class ConsentRecord(_Model):
    purpose: str
    agency_id: str
    state: ConsentState
    expires_at: Instant | None = None


class Person(_Model):
    ref: str
    consents: list[ConsentRecord] = Field(default_factory=list)
    restricted_fields: list[str] = Field(default_factory=list)


class Provider(_Model):
    agency_id: str
    agency_type: str
    agreements: list[SharingAgreement] = Field(
        default_factory=list, description="Only those between the requester and this agency."
    )
    fields: list[OfferedField] = Field(default_factory=list)
    requested_fields: list[str] = Field(default_factory=list)
    persons: list[Person] = Field(default_factory=list)


class FamilyQueryInput(_Model):
    """Everything one family-query decision depends on besides the bundle."""

    request: QueryRequest
    providers: list[Provider] = Field(default_factory=list)

    def to_document(self) -> dict[str, Any]:
        """The JSON input document the Rego policy reads."""
        return self.model_dump(mode="json")


class Reason(_Model):
    code: str
    text: str


class Obligation(_Model):
    code: str
    text: str


class WithheldField(_Model):
    field: str
    code: str
    text: str


class AgreementRef(_Model):
    id: str
    version: int


class SubmitDecision(_Model):
    allow: bool
    reasons: list[Reason]
    obligations: list[Obligation]


class ExchangeDecision(_Model):
    """What may be asked of one agency about one person, and why."""

    agency_id: str
    person_ref: str
    allow: bool
    tier: Tier = Field(description="full facts, 'known to this service' only, or none.")
    permitted_fields: list[str]
    withheld: list[WithheldField]
    obligations: list[Obligation]
    reasons: list[Reason]
    agreement: AgreementRef | None
    retention_days: int


class FamilyDecision(_Model):
    """One evaluation's answer for a whole family query."""

    submit: SubmitDecision
    exchanges: list[ExchangeDecision]
    bundle_digest: str
    engine: str

    @property
    def allow(self) -> bool:
        """Whether the query may go ahead at all."""
        return self.submit.allow

    def exchange(self, agency_id: str, person_ref: str) -> ExchangeDecision:
        """The decision for one (agency, person) pair.

        Raises:
            KeyError: the pair was not part of the query.
        """
        for item in self.exchanges:
            if item.agency_id == agency_id and item.person_ref == person_ref:
                return item
        raise KeyError((agency_id, person_ref))
