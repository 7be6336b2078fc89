"""The messages broker and connectors exchange, as typed pydantic models.

Each message class names the ``message_type`` it travels under inside a signed envelope.
The models forbid unknown members: a peer that sends more than the contract allows is
told so instead of having the extra silently ignored.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "PROTOCOL_VERSION",
    "AgencyId",
    "FactValue",
    "FetchPerson",
    "FetchRequest",
    "FetchResponse",
    "FetchStatus",
    "FieldName",
    "FieldOffer",
    "FieldType",
    "HouseholdMember",
    "JsonFloat",
    "JsonInt",
    "LinkageTokens",
    "Manifest",
    "MatchCandidate",
    "MatchRequest",
    "MatchResponse",
    "MatchStatus",
    "PersonFacts",
    "Refusal",
    "RefusalScope",
    "ReleasedFact",
    "Sensitivity",
    "ShortText",
    "Subject",
    "WithheldField",
]

PROTOCOL_VERSION = "1"

AgencyId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{1,62}$")]
FieldName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")]
LocalRef = Annotated[str, StringConstraints(min_length=8, max_length=128)]
ShortText = Annotated[str, StringConstraints(max_length=200)]
# I-JSON (RFC 7493) numbers: exactly representable everywhere, and canonicalisable.
_SAFE = 2**53
JsonInt = Annotated[int, Field(gt=-_SAFE, lt=_SAFE)]
JsonFloat = Annotated[float, Field(gt=-_SAFE, lt=_SAFE, allow_inf_nan=False)]
FactValue = str | JsonInt | JsonFloat | bool | None
# Keyed-HMAC tokens per linkage feature (given_name, dob_year, postcode_district, ...).
LinkageTokens = dict[Annotated[str, StringConstraints(max_length=64)], list[str]]
# Keyed-HMAC references of the identifiers a record holds (connectors.protocol.consent_refs).
ConsentRefs = Annotated[
    list[Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]],
    Field(
        max_length=8,
        description=(
            "Consent references of the identifiers this record holds, under the consent "
            "key the manifest names, so the broker finds consent recorded under them."
        ),
    ),
]


# Every protocol model forbids unknown members and is immutable. Its JSON prints a
# non-finite float as the bare constant (``NaN``), which no JSON parser accepts, so a
# model built around validation (``model_construct``) cannot slip one into a signed body
# as ``null``.
_PROTOCOL = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")


# In every connector answer: the size of the newest broker checkpoint the connector holds.
HeldCheckpointSize = Annotated[
    int | None,
    Field(
        ge=0,
        description=(
            "The size of the newest broker checkpoint this connector holds, so that the "
            "broker can prove its log extends it."
        ),
    ),
]


class _Message(BaseModel):
    model_config = _PROTOCOL
    message_type: ClassVar[str]


class Sensitivity(StrEnum):
    """How carefully a field must be handled (UK GDPR Articles 6, 9 and 10)."""

    ORDINARY = "ordinary"
    SPECIAL_CATEGORY = "special_category"
    CRIMINAL_OFFENCE = "criminal_offence"


class FieldType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"


class FieldOffer(BaseModel):
    """One canonical field an agency can provide."""

    model_config = _PROTOCOL

    name: FieldName
    type: FieldType
    sensitivity: Sensitivity
    description: ShortText = ""


class Manifest(_Message):
    """What a connector tells the broker about itself."""

    message_type = "manifest"

    protocol_version: Literal["1"] = "1"
    agency_id: AgencyId
    agency_name: ShortText
    agency_type: AgencyId
    public_key: str = Field(description="Base64 raw Ed25519 public key of the agency.")
    key_id: str
    linkage_key_id: str = Field(description="Which shared linkage key its tokens are under.")
    consent_key_id: str | None = Field(
        default=None,
        description="Which consent key its consent references are under; null if it sends none.",
    )
    fields: list[FieldOffer]


class Subject(BaseModel):
    """What the caseworker knows about the person they ask about."""

    model_config = _PROTOCOL

    given_name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    family_name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    date_of_birth: dt.date | None = None
    sex: Literal["F", "M", "X"] | None = None
    postcode: Annotated[str, StringConstraints(max_length=10)] | None = None
    identifiers: dict[
        Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,31}$")],
        Annotated[str, StringConstraints(min_length=1, max_length=64)],
    ] = Field(default_factory=dict, description="e.g. nhs_number, upn, ni_number, uprn")


class MatchRequest(_Message):
    """Ask a connector for candidate records of a subject and their household."""

    message_type = "match_request"

    query_id: str
    requester_agency: AgencyId
    purpose: AgencyId
    subject: Subject
    include_household: bool = True
    max_candidates: Annotated[int, Field(ge=1, le=20)] = 5


class HouseholdMember(BaseModel):
    model_config = _PROTOCOL

    ref: LocalRef
    relationship: ShortText
    tokens: LinkageTokens
    consent_refs: ConsentRefs = []


class MatchCandidate(BaseModel):
    """One of the agency's records that may be the subject. Never carries facts."""

    model_config = _PROTOCOL

    ref: LocalRef = Field(description="Opaque, stable reference local to the agency.")
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    match_weight: JsonFloat
    agreements: dict[str, str] = Field(description="Per compared field, how well it agreed.")
    tokens: LinkageTokens
    consent_refs: ConsentRefs = []
    household: list[HouseholdMember] = Field(default_factory=list)


class RefusalScope(StrEnum):
    PURPOSE = "purpose"
    REQUESTER = "requester"
    FIELD = "field"
    PERSON = "person"


class Refusal(BaseModel):
    """An agency's reasoned decision not to answer (an answer, not an error)."""

    model_config = _PROTOCOL

    scope: RefusalScope
    code: AgencyId
    reason: ShortText


class MatchStatus(StrEnum):
    MATCHED = "matched"
    NO_RECORD = "no_record"
    REFUSED = "refused"


class MatchResponse(_Message):
    message_type = "match_response"

    query_id: str
    agency_id: AgencyId
    status: MatchStatus
    candidates: list[MatchCandidate] = Field(default_factory=list)
    refusal: Refusal | None = None
    broker_checkpoint_size: HeldCheckpointSize = None


class FetchPerson(BaseModel):
    model_config = _PROTOCOL

    ref: LocalRef
    fields: list[FieldName]


class FetchRequest(_Message):
    """Ask for named fields of referenced persons, as the broker's decision permitted."""

    message_type = "fetch_request"

    query_id: str
    exchange_id: str
    requester_agency: AgencyId
    requester_role: AgencyId
    purpose: AgencyId
    legal_basis: ShortText
    decision_digest: str
    break_glass: bool = False
    persons: list[FetchPerson]
    broker_checkpoint: str | None = Field(
        default=None, description="The latest signed checkpoint of the broker's audit log."
    )
    broker_consistency_proof: list[str] | None = Field(
        default=None,
        description=(
            "Base64 RFC 6962 consistency proof that broker_checkpoint extends the tree of "
            "broker_consistency_from entries (or, without it, the newest checkpoint this "
            "connector holds); optional."
        ),
    )
    broker_consistency_from: int | None = Field(
        default=None,
        ge=0,
        description=(
            "The tree size broker_consistency_proof starts from: one the connector reported "
            "as broker_checkpoint_size in an answer."
        ),
    )


class ReleasedFact(BaseModel):
    model_config = _PROTOCOL

    field: FieldName
    value: FactValue
    as_of: dt.datetime


class WithheldField(BaseModel):
    model_config = _PROTOCOL

    field: FieldName
    code: AgencyId
    reason: ShortText


class PersonFacts(BaseModel):
    model_config = _PROTOCOL

    ref: LocalRef
    facts: list[ReleasedFact] = Field(default_factory=list)
    withheld: list[WithheldField] = Field(default_factory=list)
    refusal: Refusal | None = None


class FetchStatus(StrEnum):
    OK = "ok"
    REFUSED = "refused"


class FetchResponse(_Message):
    message_type = "fetch_response"

    query_id: str
    exchange_id: str
    agency_id: AgencyId
    decision_digest: str
    status: FetchStatus
    persons: list[PersonFacts] = Field(default_factory=list)
    refusal: Refusal | None = None
    broker_checkpoint_size: HeldCheckpointSize = None
