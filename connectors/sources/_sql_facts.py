"""The statements that compute canonical fields, built once per field set and reused.

A plan holds one statement for the person-row columns and one per related table, where
every aggregate of that table is a conditional aggregate (``SUM(CASE WHEN ... )``) so
that a fetch of twenty fields costs a handful of round trips. Keys and window dates are
bound parameters: a plan is built once and only its parameters change per request.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from connectors.errors import SourceError
from connectors.mapping import AggregateFunction, AggregateSpec, FieldSpec, PersonSpec
from connectors.protocol.messages import FactValue, FieldType
from connectors.sources._base import FetchResult, cutoff, to_datetime, to_fact

__all__ = ["FactPlan"]

_KEYS = "keys"


@dataclass(frozen=True, slots=True)
class _DateParam:
    months: int | None
    days: int | None
    as_datetime: bool

    def value(self, today: dt.date) -> dt.date | dt.datetime:
        day = (
            today
            if self.months is None and self.days is None
            else cutoff(today, months=self.months, days=self.days)
        )
        if self.as_datetime:
            return dt.datetime(day.year, day.month, day.day)  # noqa: DTZ001 - naive column
        return day


@dataclass(slots=True)
class _Group:
    statement: sa.Select[Any]
    names: list[str]


@dataclass(slots=True)
class FactPlan:
    """Prepared statements for one set of fields of one mapping."""

    person: sa.Select[Any]
    person_key: str  # TABLE.COLUMN, for messages
    column_specs: list[tuple[str, FieldSpec]]
    specs: dict[str, FieldSpec]
    groups: list[_Group] = field(default_factory=list)
    latest: list[tuple[str, sa.Select[Any]]] = field(default_factory=list)
    dates: dict[str, _DateParam] = field(default_factory=dict)

    @classmethod
    def build(
        cls, tables: dict[str, sa.Table], person: PersonSpec, specs: dict[str, FieldSpec]
    ) -> FactPlan:
        p = tables[person.table]
        columns: list[sa.ColumnElement[Any]] = [p.c[person.key].label("key")]
        if person.as_of is not None:
            columns.append(p.c[person.as_of].label("row_as_of"))
        column_specs = [(n, s) for n, s in specs.items() if s.column is not None]
        for index, (_, spec) in enumerate(column_specs):
            assert spec.column is not None  # noqa: S101 - filtered just above
            columns.append(p.c[spec.column].label(f"v{index}"))
            if spec.as_of is not None:
                columns.append(p.c[spec.as_of].label(f"a{index}"))
        keys: sa.BindParameter[Any] = sa.bindparam(_KEYS, expanding=True)
        plan = cls(
            person=sa.select(*columns).where(p.c[person.key].in_(keys)),
            person_key=f"{person.table}.{person.key}",
            column_specs=column_specs,
            specs=specs,
        )
        grouped: dict[tuple[str, str], list[tuple[str, FieldSpec]]] = {}
        for name, spec in specs.items():
            if spec.aggregate is not None:
                grouped.setdefault((spec.aggregate.table, spec.aggregate.key), []).append(
                    (name, spec)
                )
        for (table_name, key_column), members in grouped.items():
            plan._add_table(tables[table_name], key_column, members)
        return plan

    def _date(self, column: sa.ColumnElement[Any], months: int | None, days: int | None) -> Any:
        name = f"d{len(self.dates)}"
        self.dates[name] = _DateParam(months, days, isinstance(column.type, sa.DateTime))
        return sa.bindparam(name, type_=column.type)

    def _condition(self, table: sa.Table, agg: AggregateSpec) -> sa.ColumnElement[bool]:
        parts: list[sa.ColumnElement[bool]] = []
        for name, wanted in agg.where.items():
            if isinstance(wanted, list):
                parts.append(table.c[name].in_(wanted))
            else:
                parts.append(table.c[name] == wanted)
        if agg.window is not None:
            column = table.c[agg.window.column]
            parts.append(column >= self._date(column, agg.window.months, agg.window.days))
        if agg.active_until is not None:
            column = table.c[agg.active_until]
            parts.append(sa.or_(column.is_(None), column >= self._date(column, None, None)))
        return sa.and_(sa.true(), *parts)

    def _add_table(
        self, table: sa.Table, key_column: str, members: list[tuple[str, FieldSpec]]
    ) -> None:
        keys: sa.BindParameter[Any] = sa.bindparam(_KEYS, expanding=True)
        expressions: list[sa.ColumnElement[Any]] = []
        names: list[str] = []
        for name, spec in members:
            agg = spec.aggregate
            assert agg is not None  # noqa: S101 - grouped by aggregate table
            condition = self._condition(table, agg)
            as_of = (
                sa.func.max(sa.case((condition, table.c[spec.as_of])))
                if spec.as_of is not None
                else sa.null()
            )
            if agg.function is AggregateFunction.LATEST:
                assert agg.column is not None  # noqa: S101 - AggregateSpec guarantees it
                assert agg.order_by is not None  # noqa: S101 - AggregateSpec guarantees it
                as_of_column = table.c[spec.as_of] if spec.as_of is not None else sa.null()
                statement = (
                    sa.select(table.c[key_column], table.c[agg.column], as_of_column)
                    .where(table.c[key_column].in_(keys), condition)
                    .order_by(table.c[key_column], table.c[agg.order_by].desc())
                )
                self.latest.append((name, statement))
                continue
            expressions.append(_aggregate_expression(table, agg, condition))
            expressions.append(as_of)
            names.append(name)
        if names:
            statement = (
                sa.select(table.c[key_column].label("key"), *expressions)
                .where(table.c[key_column].in_(keys))
                .group_by(table.c[key_column])
            )
            self.groups.append(_Group(statement, names))

    def run(self, connection: sa.Connection, keys: list[Any], now: dt.datetime) -> FetchResult:
        """The plan's fields for ``keys`` (only the keys the source holds)."""
        today = now.date()
        params: dict[str, Any] = {_KEYS: keys}
        params.update({name: date.value(today) for name, date in self.dates.items()})
        result: FetchResult = {}
        row_as_of: dict[str, dt.datetime] = {}
        for row in connection.execute(self.person, {_KEYS: keys}):
            values = row._mapping
            key = str(values["key"])
            if key in row_as_of:
                # Never one person's facts for another's: check names the key.
                raise SourceError(
                    f"{self.person_key} holds one value on more than one row; "
                    "junction connector check names it"
                )
            row_as_of[key] = to_datetime(values.get("row_as_of"), now)
            facts = result.setdefault(key, {})
            for index, (name, spec) in enumerate(self.column_specs):
                as_of = to_datetime(values.get(f"a{index}"), row_as_of[key])
                facts[name] = (to_fact(spec, values[f"v{index}"]), as_of)
        if not result:
            return {}
        found = [k for k in keys if str(k) in result]
        params[_KEYS] = found
        aggregated: dict[tuple[str, str], tuple[object, object]] = {}
        for group in self.groups:
            for row in connection.execute(group.statement, params):
                for index, name in enumerate(group.names):
                    aggregated[(str(row[0]), name)] = (row[1 + 2 * index], row[2 + 2 * index])
        for name, statement in self.latest:
            for row in connection.execute(statement, params):
                aggregated.setdefault((str(row[0]), name), (row[1], row[2]))
        for key, facts in result.items():
            for name, spec in self.specs.items():
                if spec.aggregate is None:
                    continue
                raw, as_of_raw = aggregated.get((key, name), (None, None))
                facts[name] = (
                    _aggregate_default(spec, raw),
                    to_datetime(as_of_raw, row_as_of[key]),
                )
        return {key: {name: facts[name] for name in self.specs} for key, facts in result.items()}


def _aggregate_expression(
    table: sa.Table, agg: AggregateSpec, condition: sa.ColumnElement[bool]
) -> sa.ColumnElement[Any]:
    if agg.function is AggregateFunction.COUNT:
        return sa.func.sum(sa.case((condition, 1), else_=0))
    if agg.function is AggregateFunction.EXISTS:
        return sa.func.max(sa.case((condition, 1), else_=0))
    assert agg.column is not None  # noqa: S101 - AggregateSpec guarantees it
    valued = sa.case((condition, table.c[agg.column]))
    if agg.function is AggregateFunction.SUM:
        return sa.func.sum(valued)
    if agg.function is AggregateFunction.MIN:
        return sa.func.min(valued)
    return sa.func.max(valued)


def _aggregate_default(spec: FieldSpec, raw: object) -> FactValue:
    agg = spec.aggregate
    assert agg is not None  # noqa: S101 - only called for aggregates
    if raw is None and agg.function in (AggregateFunction.COUNT, AggregateFunction.SUM):
        raw = 0
    if raw is None and spec.type is FieldType.BOOLEAN:
        raw = False
    try:
        return to_fact(spec, raw)
    except (TypeError, ValueError):
        raise SourceError(f"value of {agg.table}.{agg.column} is not a {spec.type}") from None
