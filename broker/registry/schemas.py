"""The registry's API models: agencies, connectors, sharing agreements."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from broker._instants import SPAN, comparable, in_utc, not_a_number
from connectors.protocol.messages import FieldOffer

__all__ = [
    "AgencyChange",
    "AgencyIn",
    "AgencyOut",
    "AgreementCreate",
    "AgreementIn",
    "AgreementOut",
    "AgreementStatus",
    "ConnectorIn",
    "ConnectorOut",
    "agency_etag",
    "agreement_etag",
    "if_match_names",
]

AgencyId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{1,62}$")]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.-]{0,62}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
FieldName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")]
AgreementStatus = Literal["draft", "active", "suspended", "ended"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgencyChange(_In):
    """What may change about an agency."""

    name: Name = Field(examples=["Riverside Borough Council"])
    type: AgencyId = Field(
        description="One of the agency types in the policy catalogue (agency_types.json).",
        examples=["local_authority"],
    )


class AgencyIn(AgencyChange):
    id: AgencyId = Field(examples=["council"])


class ConnectorIn(_In):
    """Where an agency's connector answers, and the key its envelopes are signed with."""

    base_url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=500)] = Field(
        description=(
            "http(s)://host[:port][/path], with no query or fragment: the broker appends"
            " /v1/manifest and its other paths to it."
        ),
        examples=["https://junction.council.example"],
    )
    public_key: str = Field(
        description="The agency's Ed25519 public key, raw 32 bytes in base64.",
        examples=["Jk1pZ8mYl3VQy2xv0fWb3qkE1oQm8Yy5p0n9s6gC2dQ="],
    )
    key_id: str | None = Field(
        default=None, description="Optional; if given it must be the key id of public_key."
    )

    @field_validator("base_url")
    @classmethod
    def _usable(cls, value: str) -> str:
        # The pattern lets through what no request can be sent to; it would otherwise
        # fail only when the manifest is fetched, with the HTTP client's own error.
        problem = _url_problem(value)
        if problem is not None:
            raise ValueError(f"base_url is not a usable URL: {problem}")
        return value


def _url_problem(url: str) -> str | None:
    """What makes ``url`` (matching ``https?://\\S+``) unusable as a connector's base
    URL, in words that do not repeat it; ``None`` if it is usable."""
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in url):
        return "it holds a control character"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "an IPv6 address goes in brackets, e.g. http://[::1]:8080"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        return "the port must be a number from 1 to 65535"
    if not parts.hostname:
        return "it names no host"
    if parts.query or parts.fragment:
        # The broker appends its paths (/v1/manifest, ...) to the base URL.
        return "a base URL takes no query (?) or fragment (#)"
    try:
        httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return "write it as http(s)://host[:port][/path]"
    return None


class AgencyUpdate(AgencyChange):
    """A change to an agency, with the connector that confirms a new type."""

    connector: ConnectorIn | None = Field(
        default=None,
        description=(
            "Only with a new type, when the agency's connector moves at the same time: the"
            " new connector, which must announce the new type, registered with it. Without"
            " it, the registered connector is asked. With the type unchanged it is refused:"
            " register a connector with PUT /v1/agencies/{agency_id}/connector."
        ),
    )


class ConnectorOut(BaseModel):
    agency_id: str
    base_url: str
    public_key: str
    key_id: str
    agency_name: str = Field(description="As the connector's signed manifest states it.")
    linkage_key_id: str
    consent_key_id: str | None = Field(
        default=None,
        description=(
            "The consent key its consent references are under (null: it sends none); "
            "equal to the broker's for consent to be found through its records."
        ),
    )
    fields: list[FieldOffer]
    manifest_fetched_at: datetime
    registered_at: datetime


class AgencyOut(BaseModel):
    id: str
    name: str
    type: str
    created_at: datetime
    updated_at: datetime
    connector: ConnectorOut | None = None


class AgreementIn(_In):
    """One version of a data sharing agreement. Changing it stores a new version.

    Its lists are sets: they are kept sorted, each name once, so terms that differ only
    in order are the same terms.
    """

    parties: list[AgencyId] = Field(min_length=2, examples=[["council", "police"]])
    purposes: list[Slug] = Field(min_length=1, examples=[["early_help_assessment"]])
    legal_bases: list[Slug] = Field(
        min_length=1,
        description="'consent' and/or statutory gateway ids.",
        examples=[["consent", "children_act_1989_s17"]],
    )
    fields: list[FieldName] = Field(
        min_length=1, examples=[["police.domestic_abuse_incidents_12m"]]
    )
    valid_from: AwareDatetime
    valid_to: AwareDatetime | None = None
    status: AgreementStatus = "draft"

    @field_validator("parties", "purposes", "legal_bases", "fields")
    @classmethod
    def _sorted_once_each(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # Each list is a set. Kept in the order sent, the same terms reordered would
        # compare as a change, and be stored and logged as a new version.
        if info.field_name == "parties" and len(set(value)) != len(value):
            # Two parties named, one of them twice, would be an agreement with itself.
            raise ValueError("each party may appear only once")
        return sorted(set(value))

    @field_validator("valid_from", "valid_to", mode="before")
    @classmethod
    def _not_a_number(cls, value: object, info: ValidationInfo) -> object:
        # A date written 20260101 would otherwise become one in August 1970.
        try:
            return not_a_number(value)
        except ValueError as exc:
            raise ValueError(f"{info.field_name} {exc}") from None

    @field_validator("valid_from", "valid_to")
    @classmethod
    def _in_utc(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        utc = in_utc(value)
        stored = isinstance(info.context, dict) and info.context.get("stored", False)
        if not stored and not comparable(utc):
            # A time policy cannot compare would make an agreement silently never apply.
            raise ValueError(
                f"{info.field_name} must fall {SPAN}; an agreement without an end has no valid_to"
            )
        return value if utc is None else utc

    @model_validator(mode="after")
    def _dates_in_order(self) -> AgreementIn:
        if self.valid_to is not None and self.valid_to <= self.valid_from:
            raise ValueError("valid_to must come after valid_from")
        return self


def agreement_etag(version: int) -> str:
    """The entity tag of an agreement's version (RFC 9110 section 8.8.3)."""
    return f'"{version}"'


def agency_etag(name: str, agency_type: str) -> str:
    """The entity tag of an agency as ``PUT /v1/agencies/{id}`` changes it: its name and
    type. (A connector changed meanwhile is caught by the change itself.)"""
    digest = hashlib.sha256(json.dumps([name, agency_type]).encode("utf-8")).hexdigest()
    return f'"{digest[:20]}"'


def if_match_names(if_match: str, etag: str) -> bool:
    """Whether an ``If-Match`` header names ``etag`` (or ``*``), compared strongly as
    RFC 9110 section 13.1.1 requires: a weak tag never matches."""
    tags = {tag.strip() for tag in if_match.split(",")}
    return "*" in tags or etag in tags


class AgreementCreate(AgreementIn):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "dsa-council-police",
                    "parties": ["council", "police"],
                    "purposes": ["early_help_assessment"],
                    "legal_bases": ["consent"],
                    "fields": ["police.missing_episodes_12m"],
                    "valid_from": "2026-01-01T00:00:00Z",
                    "status": "active",
                }
            ]
        },
    )

    id: Slug = Field(examples=["dsa-council-police"])


class AgreementOut(BaseModel):
    id: str
    version: int
    parties: list[str]
    purposes: list[str]
    legal_bases: list[str]
    fields: list[str]
    valid_from: datetime
    valid_to: datetime | None
    status: AgreementStatus
    created_at: datetime
    created_by: str
