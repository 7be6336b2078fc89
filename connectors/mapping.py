"""The mapping file: how one agency's own tables become Junction's canonical model.

An agency joins by writing a YAML file, not code. It names the source (an SQLAlchemy URL
or a CSV directory), the table that holds people and which of its columns carry names,
date of birth, sex, postcode and identifiers, how household members are linked, and how
each canonical field (``education.attendance_rate``, ``police.domestic_abuse_incidents_12m``,
...) is computed: a column of the person row, or an aggregate over a related table with a
filter and a time window. ``load_mapping`` reads and validates the file; a source's
``check()`` then validates it against the live database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping as MappingABC
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from connectors._validation import first_problem
from connectors._yaml import YamlProblem, read_yaml
from connectors.encoding import not_utf8
from connectors.errors import MappingError
from connectors.protocol.messages import FieldOffer, FieldType, Sensitivity

__all__ = [
    "AddressJoin",
    "AgencyInfo",
    "AggregateFunction",
    "AggregateSpec",
    "ColumnSpec",
    "CsvSourceSpec",
    "DateColumn",
    "FieldSpec",
    "HouseholdLinkTable",
    "HouseholdSharedColumn",
    "Mapping",
    "NameCase",
    "PersonSpec",
    "SqlSourceSpec",
    "WindowSpec",
    "load_mapping",
    "parse_mapping",
]

Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")]
CanonicalName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")]
Scalar = str | int | float | bool

_ENV_REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgencyInfo(_Model):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{1,62}$")]
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    type: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{1,62}$")]


class SqlSourceSpec(_Model):
    """A relational database reached through SQLAlchemy (PostgreSQL, MariaDB/MySQL, SQLite)."""

    kind: Literal["sql"]
    url: str = Field(description="SQLAlchemy URL; ${VARIABLE} is replaced from the environment.")
    timeout_ms: Annotated[int, Field(ge=10, le=600_000)] = 5_000
    pool_size: Annotated[int, Field(ge=1, le=100)] = 5


class CsvSourceSpec(_Model):
    """A directory of CSV files, one ``<table>.csv`` per table, with a header row."""

    kind: Literal["csv"]
    directory: Path
    timeout_ms: Annotated[int, Field(ge=10, le=600_000)] = 5_000


class NameCase(StrEnum):
    """How the source stores names, so blocking can look them up on an index."""

    MIXED = "mixed"
    UPPER = "upper"
    LOWER = "lower"


class DateColumn(_Model):
    """A date column; ``format`` (strftime) when the source stores dates as text."""

    column: Identifier
    format: str | None = None


class ColumnSpec(_Model):
    """A person-row column, optionally with its codes translated."""

    column: Identifier
    codes: dict[str, str] = Field(default_factory=dict)


class AddressJoin(_Model):
    """People whose address lives in a separate table, reached through a foreign key."""

    table: Identifier
    key: Identifier = Field(description="Primary key of the address table.")
    person_column: Identifier = Field(description="Column of the person table that points at it.")
    postcode: Identifier
    uprn: Identifier | None = None


class PersonSpec(_Model):
    """The table (or CSV file) that holds one row per person, and what its columns mean."""

    table: Identifier
    key: Identifier
    given_name: Identifier
    family_name: Identifier
    name_case: NameCase = NameCase.MIXED
    date_of_birth: DateColumn | None = None
    sex: ColumnSpec | None = None
    postcode: Identifier | None = None
    uprn: Identifier | None = None
    address: AddressJoin | None = None
    identifiers: dict[Identifier, Identifier] = Field(
        default_factory=dict, description="Canonical identifier name (nhs_number, upn) -> column."
    )
    as_of: Identifier | None = Field(default=None, description="When the row was last updated.")

    @model_validator(mode="after")
    def _one_postcode(self) -> PersonSpec:
        if self.postcode is not None and self.address is not None:
            raise ValueError("give postcode either on the person table or in address, not both")
        return self


class HouseholdSharedColumn(_Model):
    """Household members are the people sharing a value (a family id, an address id)."""

    kind: Literal["shared_column"]
    column: Identifier
    relationship: Identifier | None = Field(
        default=None, description="Column holding each member's role in the household."
    )


class HouseholdLinkTable(_Model):
    """Household members are listed in a link table: (person, related person, relationship)."""

    kind: Literal["link_table"]
    table: Identifier
    person: Identifier
    related: Identifier
    relationship: Identifier


class WindowSpec(_Model):
    """Only rows whose ``column`` date falls within the last ``months`` (or ``days``)."""

    column: Identifier
    months: Annotated[int, Field(ge=1, le=240)] | None = None
    days: Annotated[int, Field(ge=1, le=7300)] | None = None

    @model_validator(mode="after")
    def _one_length(self) -> WindowSpec:
        if (self.months is None) == (self.days is None):
            raise ValueError("a window gives exactly one of months or days")
        return self


class AggregateFunction(StrEnum):
    COUNT = "count"
    EXISTS = "exists"
    SUM = "sum"
    MIN = "min"
    MAX = "max"
    LATEST = "latest"


class AggregateSpec(_Model):
    """A value computed over the rows of a related table that belong to the person."""

    table: Identifier
    key: Identifier = Field(description="Column of the related table holding the person key.")
    function: AggregateFunction
    column: Identifier | None = Field(default=None, description="Summed/compared column.")
    where: dict[Identifier, Scalar | list[Scalar]] = Field(default_factory=dict)
    window: WindowSpec | None = None
    active_until: Identifier | None = Field(
        default=None, description="End-date column: only rows not yet ended (null or future)."
    )
    order_by: Identifier | None = Field(default=None, description="For latest: the date column.")

    @model_validator(mode="after")
    def _needs_column(self) -> AggregateSpec:
        valued = {AggregateFunction.SUM, AggregateFunction.MIN, AggregateFunction.MAX}
        if self.function in valued | {AggregateFunction.LATEST} and self.column is None:
            raise ValueError(f"aggregate {self.function.value} needs a column")
        if self.function is AggregateFunction.LATEST and self.order_by is None:
            raise ValueError("aggregate latest needs order_by")
        return self


class FieldSpec(_Model):
    """One canonical field: its type, sensitivity, and how to compute it."""

    type: FieldType
    sensitivity: Sensitivity
    description: Annotated[str, StringConstraints(max_length=200)] = ""
    column: Identifier | None = None
    aggregate: AggregateSpec | None = None
    codes: dict[str, Scalar] = Field(default_factory=dict)
    scale: float | None = Field(default=None, description="Multiply a number (pence -> pounds).")
    as_of: Identifier | None = Field(
        default=None,
        description="Date column giving the value's as-of time (the related table's, for an "
        "aggregate: its latest row); otherwise the person row's as_of.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        if (self.column is None) == (self.aggregate is None):
            raise ValueError("a field is computed from exactly one of column or aggregate")
        return self


class Mapping(_Model):
    """A whole mapping file. Build it with ``load_mapping``."""

    agency: AgencyInfo
    source: SqlSourceSpec | CsvSourceSpec = Field(discriminator="kind")
    person: PersonSpec
    household: HouseholdSharedColumn | HouseholdLinkTable | None = Field(
        default=None, discriminator="kind"
    )
    fields: dict[CanonicalName, FieldSpec]
    flags: dict[Identifier, FieldSpec] = Field(
        default_factory=dict,
        description="Protective flags (sealed, refuge, ...) for local policy; never released.",
    )

    def offers(self) -> list[FieldOffer]:
        """The canonical fields this agency offers, as the manifest lists them."""
        return [
            FieldOffer(
                name=name,
                type=spec.type,
                sensitivity=spec.sensitivity,
                description=spec.description,
            )
            for name, spec in sorted(self.fields.items())
        ]


def _substitute(text: str, environ: MappingABC[str, str], origin: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise MappingError(f"{origin}: environment variable {name} is not set")
        return environ[name]

    return _ENV_REFERENCE.sub(replace, text)


def parse_mapping(
    text: str,
    *,
    environ: MappingABC[str, str] | None = None,
    origin: str = "mapping",
    base_dir: Path | None = None,
) -> Mapping:
    """Parse mapping YAML; ``${VAR}`` in the text is replaced from ``environ``.

    A relative CSV directory is taken relative to ``base_dir`` (the file's folder).

    Raises:
        MappingError: the YAML is malformed, a variable is unset, or a member is wrong
            (the message names the first offending member).
    """
    text = _substitute(text, environ or {}, origin)
    try:
        raw = read_yaml(text)
    except YamlProblem as exc:
        raise MappingError(f"{origin}: {exc}") from None
    if not isinstance(raw, dict):
        raise MappingError(f"{origin}: expected a mapping with agency, source, person, fields")
    try:
        mapping = Mapping.model_validate(raw)
    except ValidationError as exc:
        raise MappingError(f"{origin}: {first_problem(exc, Mapping)}") from None
    if isinstance(mapping.source, CsvSourceSpec) and base_dir is not None:
        directory = mapping.source.directory
        if not directory.is_absolute():
            source = mapping.source.model_copy(update={"directory": base_dir / directory})
            mapping = mapping.model_copy(update={"source": source})
    return mapping


def load_mapping(path: Path, *, environ: MappingABC[str, str] | None = None) -> Mapping:
    """Read and validate a mapping file (structure only; ``Source.check`` does the rest).

    Raises:
        MappingError: the file cannot be read or does not describe a valid mapping.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(f"{path}: cannot read the mapping file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise MappingError(not_utf8(path)) from None
    return parse_mapping(text, environ=environ, origin=str(path), base_dir=path.parent)
