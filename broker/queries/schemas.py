"""The family query's API: what a caseworker sends, and the family view they get back."""

from __future__ import annotations

import datetime as dt
import re
from functools import partial
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, with_config
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from broker._text import LINES, ONE_LINE
from connectors.protocol.identifiers import canonical
from connectors.protocol.messages import FactValue

__all__ = [
    "AgencyStatus",
    "AgencyStatusView",
    "BreakGlassIn",
    "FactView",
    "FamilyQueryRequest",
    "FamilyView",
    "LinkDecisionIn",
    "LinkView",
    "MemberView",
    "NeedView",
    "ReasonView",
    "ReceiptView",
    "RecordView",
    "RetentionView",
    "SubjectIdentifiers",
    "SubjectIn",
    "WithheldView",
]


Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), ONE_LINE]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,63}$")]
_ITEM = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")


def _item_name(value: str) -> str:
    """``value``, if it is spelt as agencies name the items they offer; otherwise a
    refusal that does not repeat it (it may be anything at all)."""
    if not _ITEM.fullmatch(value):
        raise ValueError(
            "not an item name: lower-case words joined by '.' and '_', such as"
            " education.attendance_rate"
        )
    return value


ItemName = Annotated[str, StringConstraints(max_length=100), AfterValidator(_item_name)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


_Typed = StringConstraints(strip_whitespace=True, min_length=1, max_length=20)
NhsNumber = Annotated[str, _Typed, AfterValidator(partial(canonical, "nhs_number"))]
Upn = Annotated[str, _Typed, AfterValidator(partial(canonical, "upn"))]
NiNumber = Annotated[str, _Typed, AfterValidator(partial(canonical, "ni_number"))]
Uprn = Annotated[str, _Typed, AfterValidator(partial(canonical, "uprn"))]


@with_config(ConfigDict(extra="forbid"))
class SubjectIdentifiers(TypedDict, total=False):
    """The person's known identifiers, each checked and written in its canonical form.

    Spaces and hyphens between characters do not matter, nor does case.
    """

    nhs_number: Annotated[NhsNumber, Field(examples=["9434765919"])]
    upn: Annotated[Upn, Field(examples=["B801200005001"])]
    ni_number: Annotated[NiNumber, Field(examples=["AB123456C"])]
    uprn: Annotated[Uprn, Field(examples=["100023336956"])]


# No one living was born before this; a date before it is a mistyped year.
EARLIEST_BIRTH = dt.date(1880, 1, 1)


def _born(value: dt.date) -> dt.date:
    """A date of birth someone could have: not before 1880, not after today (UTC today
    and a day, since a person's today may be ahead of it)."""
    if value < EARLIEST_BIRTH:
        raise ValueError(
            f"a date of birth before {EARLIEST_BIRTH.year} is not possible: check the year"
        )
    if value > dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1):
        raise ValueError("a date of birth cannot be in the future: check the year")
    return value


# A UK postcode, whole or its outward part alone (the district): "NB1 4QT", "NB14QT",
# "NB1". Case and the space do not matter.
_POSTCODE = re.compile(r"(?:[A-Z]{1,2}[0-9][A-Z0-9]?(?: ?[0-9][A-Z]{2})?|GIR ?0AA)", re.I)


def _postcode(value: str) -> str:
    if value and not _POSTCODE.fullmatch(value):
        raise ValueError("enter a UK postcode such as NB1 4QT, or its first part (NB1)")
    return value


class SubjectIn(_In):
    """What the caseworker knows about the person the query is about."""

    given_name: Annotated[str, StringConstraints(min_length=1, max_length=100), ONE_LINE]
    family_name: Annotated[str, StringConstraints(min_length=1, max_length=100), ONE_LINE]
    date_of_birth: Annotated[dt.date, AfterValidator(_born)] | None = None
    sex: Literal["F", "M", "X"] | None = None
    postcode: Annotated[str, StringConstraints(max_length=10), AfterValidator(_postcode)] | None = (
        None
    )
    identifiers: SubjectIdentifiers = Field(default_factory=SubjectIdentifiers)

    def identifier_values(self) -> dict[str, str]:
        """The identifiers given, by kind, in their canonical forms."""
        return {kind: str(value) for kind, value in self.identifiers.items()}


class BreakGlassIn(_In):
    reason_code: Slug
    text: Annotated[str, StringConstraints(min_length=10, max_length=1000), LINES]


class FamilyQueryRequest(_In):
    """One joined-up question about a family."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "subject": {
                        "given_name": "Amelia",
                        "family_name": "Okafor",
                        "date_of_birth": "2014-05-02",
                        "postcode": "NB1 4QT",
                        "identifiers": {"nhs_number": "9434765919"},
                    },
                    "purpose": "early_help_assessment",
                    "legal_basis": "public_task",
                    "gateway": "children_act_2004_s10",
                    "case_reference": "EH-2026-0413",
                    "justification": "School raised attendance and welfare concerns.",
                }
            ]
        },
    )

    subject: SubjectIn
    purpose: Slug
    legal_basis: Literal["consent", "public_task"]
    gateway: Slug | None = None
    case_reference: Text | None = None
    justification: Annotated[str, StringConstraints(min_length=10, max_length=2000), LINES]
    conditions: list[Slug] = Field(default_factory=list, max_length=10)
    consent_not_sought_reason: Slug | None = None
    override_reason: Annotated[str, StringConstraints(max_length=1000), LINES] | None = None
    break_glass: BreakGlassIn | None = None
    include_household: bool = True
    fields: list[ItemName] | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="Limit the request to these fields; default all offered.",
    )


AgencyStatus = Literal["ok", "no_record", "ambiguous", "withheld", "refused", "timeout", "error"]


class ReasonView(BaseModel):
    code: str
    text: str


class AgencyStatusView(BaseModel):
    agency_id: str
    agency_name: str
    status: AgencyStatus
    detail: str = ""
    elapsed_ms: float | None = None
    reasons: list[ReasonView] = Field(default_factory=list)


class FactView(BaseModel):
    field: str
    value: FactValue
    source_agency: str
    as_of: dt.datetime


class WithheldView(BaseModel):
    agency_id: str
    field: str | None = Field(description="None when the whole record was withheld.")
    code: str
    reason: str


class RecordView(BaseModel):
    agency_id: str
    ref: str
    match_score: float | None = None


class LinkView(BaseModel):
    link_id: str = Field(description="Pass to the links endpoint to confirm or reject.")
    left: str = Field(description="agency:ref of one record")
    right: str = Field(description="agency:ref of the other")
    left_member: str | None = None
    right_member: str | None = None
    confidence: float
    explanation: dict[str, str]
    decided_by: str


class MemberView(BaseModel):
    member_id: str
    is_subject: bool
    relationship: str | None
    confidence: float
    links: list[LinkView]
    records: list[RecordView]
    known_to: list[str] = Field(description="Agencies that may only say they know the person.")
    facts: dict[str, list[FactView]] = Field(description="Released facts by domain.")
    withheld: list[WithheldView]


class NeedView(BaseModel):
    code: str
    title: str
    status: Literal["met", "not_met", "unknown"]
    evidence: list[str]


class ReceiptView(BaseModel):
    entries: list[int] = Field(description="Audit log indexes of every exchange of this query.")
    release_entry: int | None
    checkpoint: str | None = Field(
        description="The newest signed checkpoint (C2SP note) when the answer was released;"
        " it may not cover this query's entries yet: `proofs` waits for one that does."
    )
    tree_size: int | None
    proofs: str = Field(description="Where to get inclusion proofs for the entries.")


class RetentionView(BaseModel):
    """How long what an answer released may be kept, as the purpose's policy allows."""

    days: int = Field(
        description="Days the caller's service may keep what was released: the shortest"
        " retention the policy set for any agency whose facts were released.",
        examples=[730],
    )
    keep_until: dt.date = Field(
        description="The last day it may be kept: the query's date (UTC) plus `days`.",
        examples=["2028-11-23"],
    )


class FamilyView(BaseModel):
    query_id: str
    status: Literal["complete", "partial", "refused"]
    created_at: dt.datetime
    purpose: str
    legal_basis: str
    refusal: list[ReasonView] = Field(default_factory=list)
    obligations: list[ReasonView] = Field(default_factory=list)
    retention: RetentionView | None = Field(
        default=None,
        description="How long your service (you, or your case management system) may keep"
        " what was released; null when no facts were released.",
        examples=[{"days": 730, "keep_until": "2028-11-23"}],
    )
    agencies: list[AgencyStatusView] = Field(default_factory=list)
    members: list[MemberView] = Field(default_factory=list)
    uncertain_links: list[LinkView] = Field(default_factory=list)
    needs: list[NeedView] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list, description="Exchanges that were flagged.")
    policy_digest: str | None = None
    receipt: ReceiptView | None = None


class LinkDecisionIn(_In):
    link_id: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    decision: Literal["confirm", "reject"]
