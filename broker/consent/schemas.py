"""The consent register's API models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from broker._instants import SPAN, WrittenTime, comparable, in_utc
from connectors.protocol.identifiers import canonical

__all__ = [
    "Channel",
    "ConsentIn",
    "ConsentOut",
    "ConsentSearch",
    "ConsentTransition",
    "GivenBy",
    "Identifier",
    "State",
    "StateOut",
]

AgencyId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{1,62}$")]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.-]{0,62}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
GivenBy = Literal["person", "parent", "guardian"]
Channel = Literal["in_person", "phone", "paper", "online"]
State = Literal["given", "withdrawn", "expired", "refused", "not_sought"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Identifier(_In):
    """One identifier of the person; only its keyed reference is stored."""

    kind: Literal["nhs_number", "upn", "ni_number", "local_ref"] = Field(
        description="local_ref values read '<agency>:<reference>', as a family view shows them."
    )
    value: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
    ] = Field(
        description="NHS numbers have 10 digits and a valid check digit; spaces and hyphens"
        " between characters do not matter, nor does case."
    )

    @field_validator("value")
    @classmethod
    def _canonical(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind")
        # An unknown kind has its own error already; its value cannot be checked.
        return value if kind is None else canonical(kind, value)


class ConsentIn(_In):
    """A consent statement the caseworker records."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "identifiers": [
                        {"kind": "nhs_number", "value": "943 476 5919"},
                        {"kind": "local_ref", "value": "police:P-2231"},
                    ],
                    "label": "J.M.",
                    "purpose": "early_help_assessment",
                    "scope": ["police", "school"],
                    "given_by": "parent",
                    "channel": "paper",
                    "evidence_reference": "Form EH-1 #2231",
                    "expires_at": "2027-11-21T00:00:00Z",
                }
            ]
        },
    )

    identifiers: list[Identifier] = Field(min_length=1, max_length=20)
    label: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = Field(
        default=None,
        description="A short label you will recognise (initials); never logged in clear.",
    )
    purpose: Slug = Field(examples=["early_help_assessment"])
    scope: list[AgencyId] | Literal["all"] = Field(
        description="The agencies it covers: a list of agency ids, or 'all'.",
        examples=[["police", "school"], "all"],
    )
    state: Literal["given", "refused", "not_sought"] = "given"
    given_by: GivenBy = "person"
    channel: Channel
    evidence_reference: Text | None = Field(
        default=None, description="Where the evidence is (form number, call log reference)."
    )
    expires_at: WrittenTime | None = None
    note: Text | None = Field(
        default=None,
        validate_default=True,
        description="Why consent was not sought (required then), or anything to keep with it.",
    )
    restricted_fields: list[
        Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")]
    ] = Field(
        default_factory=list,
        max_length=50,
        description="Items the person asks not to be shared for this purpose, on any basis.",
        examples=[["health.mental_health_contacts_12m"]],
    )

    @field_validator("scope")
    @classmethod
    def _scope_not_empty(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list):
            if not value:
                raise ValueError("name at least one agency, or 'all'")
            return sorted(set(value))
        return value

    @field_validator("expires_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        utc = in_utc(value)
        if not comparable(utc):
            # Policy compares a given consent's expiry with the time now; one outside
            # its range fails the decision about the person on some engines.
            raise ValueError(
                f"expires_at must fall {SPAN}; a consent that does not expire has none"
            )
        return utc

    @field_validator("note")
    @classmethod
    def _why_not_sought(cls, value: str | None, info: ValidationInfo) -> str | None:
        # The next caseworker must be able to read why nobody asked, and whether to ask.
        if value is None and info.data.get("state") == "not_sought":
            raise ValueError("say why consent was not sought")
        return value


class ConsentTransition(_In):
    """A change of state: withdrawn (from given), given or refused (after being asked)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"state": "withdrawn", "note": "Mother withdrew at the front desk"}]
        },
    )

    state: Literal["given", "withdrawn", "refused"]
    note: Text | None = None


class ConsentSearch(_In):
    """Find the consents recorded for a person, by any of their identifiers."""

    identifiers: list[Identifier] = Field(min_length=1, max_length=20)
    purpose: Slug | None = None


class StateOut(BaseModel):
    state: State
    at: datetime
    by: str
    note: str | None = None
    automatic: bool = Field(default=False, description="True for expiry, which nobody records.")


class ConsentOut(BaseModel):
    id: str
    label: str | None
    purpose: str
    scope: list[str] | Literal["all"]
    given_by: GivenBy
    channel: Channel
    evidence_reference: str | None
    recorded_by: str
    recorded_by_agency: str
    recorded_at: datetime
    expires_at: datetime | None
    state: State = Field(description="The state now (given turns expired at expires_at).")
    history: list[StateOut]
    restricted_fields: list[str] = Field(default_factory=list)
