"""Which tables and columns a mapping reads, and what kind of column each must be."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import sqlalchemy as sa

from connectors.errors import MappingError
from connectors.mapping import AggregateFunction, FieldSpec, HouseholdLinkTable, Mapping
from connectors.protocol.messages import FieldType

__all__ = ["ColumnKind", "column_kind_ok", "referenced_columns", "verify_schema"]

ColumnKind = Literal["any", "date", "text", "number"]


def _field_columns(
    where: str, spec: FieldSpec, person_table: str
) -> Iterator[tuple[str, str, ColumnKind, str]]:
    if spec.column is not None:
        kind: ColumnKind = "date" if spec.type is FieldType.DATE and not spec.codes else "any"
        yield person_table, spec.column, kind, where
        if spec.as_of is not None:
            yield person_table, spec.as_of, "date", f"{where}.as_of"
        return
    agg = spec.aggregate
    assert agg is not None  # noqa: S101 - FieldSpec guarantees column or aggregate
    yield agg.table, agg.key, "any", f"{where}.aggregate.key"
    if agg.column is not None:
        kind = "number" if agg.function is AggregateFunction.SUM else "any"
        yield agg.table, agg.column, kind, f"{where}.aggregate.column"
    for column in agg.where:
        yield agg.table, column, "any", f"{where}.aggregate.where"
    if agg.window is not None:
        yield agg.table, agg.window.column, "date", f"{where}.aggregate.window"
    if agg.active_until is not None:
        yield agg.table, agg.active_until, "date", f"{where}.aggregate.active_until"
    if agg.order_by is not None:
        yield agg.table, agg.order_by, "date", f"{where}.aggregate.order_by"
    if spec.as_of is not None:
        yield agg.table, spec.as_of, "date", f"{where}.as_of"


def referenced_columns(mapping: Mapping) -> list[tuple[str, str, ColumnKind, str]]:
    """Every (table, column, kind it must be, where the mapping names it)."""
    person = mapping.person
    table = person.table
    refs: list[tuple[str, str, ColumnKind, str]] = [
        (table, person.key, "any", "person.key"),
        (table, person.given_name, "text", "person.given_name"),
        (table, person.family_name, "text", "person.family_name"),
    ]
    if person.date_of_birth is not None:
        kind: ColumnKind = "text" if person.date_of_birth.format else "date"
        refs.append((table, person.date_of_birth.column, kind, "person.date_of_birth"))
    if person.sex is not None:
        refs.append((table, person.sex.column, "any", "person.sex"))
    for column, where in ((person.postcode, "postcode"), (person.uprn, "uprn")):
        if column is not None:
            refs.append((table, column, "any", f"person.{where}"))
    for name, column in person.identifiers.items():
        refs.append((table, column, "any", f"person.identifiers.{name}"))
    if person.as_of is not None:
        refs.append((table, person.as_of, "date", "person.as_of"))
    if person.address is not None:
        address = person.address
        refs.append((table, address.person_column, "any", "person.address.person_column"))
        refs.append((address.table, address.key, "any", "person.address.key"))
        refs.append((address.table, address.postcode, "text", "person.address.postcode"))
        if address.uprn is not None:
            refs.append((address.table, address.uprn, "any", "person.address.uprn"))
    household = mapping.household
    if isinstance(household, HouseholdLinkTable):
        for column in (household.person, household.related, household.relationship):
            refs.append((household.table, column, "any", "household"))
    elif household is not None:
        refs.append((table, household.column, "any", "household.column"))
        if household.relationship is not None:
            refs.append((table, household.relationship, "any", "household.relationship"))
    for name, spec in mapping.fields.items():
        refs.extend(_field_columns(f"fields.{name}", spec, table))
    for name, spec in mapping.flags.items():
        refs.extend(_field_columns(f"flags.{name}", spec, table))
    return refs


def column_kind_ok(column_type: sa.types.TypeEngine[object], kind: ColumnKind) -> bool:
    """Whether a reflected column type can serve as ``kind``."""
    if kind == "date":
        return isinstance(column_type, sa.Date | sa.DateTime)
    if kind == "text":
        return isinstance(column_type, sa.String)
    if kind == "number":
        return isinstance(column_type, sa.Integer | sa.Numeric | sa.Float)
    return True


_KIND_NAMES = {"date": "a date", "text": "text", "number": "a number", "any": "any"}


def verify_schema(mapping: Mapping, tables: dict[str, sa.Table], where: str) -> None:
    """Check every referenced table and column exists with a usable type.

    Raises:
        MappingError: listing every missing table (once, where the mapping first names
            it), missing column and column of the wrong type, in the mapping's order.
    """
    problems: list[str] = []
    missing: set[str] = set()
    for table, column, kind, named_by in referenced_columns(mapping):
        if table not in tables:
            if table not in missing:
                missing.add(table)
                problems.append(f"{named_by}: table {table} not found in {where}")
            continue
        columns = tables[table].c
        if column not in columns:
            problems.append(f"{named_by}: column {table}.{column} not found in {where}")
        elif not column_kind_ok(columns[column].type, kind):
            problems.append(
                f"{named_by}: column {table}.{column} is {columns[column].type}, "
                f"expected {_KIND_NAMES[kind]}"
            )
    if problems:
        raise MappingError.listing(problems)
