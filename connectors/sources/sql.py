"""An agency source in a relational database, read through SQLAlchemy Core.

Every query is built from the mapping with SQLAlchemy Core and bound parameters; no value
a caller sends is ever formatted into SQL text. Sessions are read-only (SQLite opened
``mode=ro``, PostgreSQL ``default_transaction_read_only``, MariaDB/MySQL read-only
transactions) and every statement runs under the mapping's time limit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from connectors.errors import MappingError, SourceError, UnknownField
from connectors.mapping import (
    AggregateFunction,
    AggregateSpec,
    FieldSpec,
    HouseholdLinkTable,
    Mapping,
    SqlSourceSpec,
)
from connectors.protocol.messages import FactValue, FieldType, Subject
from connectors.sources._base import (
    Clock,
    FetchResult,
    SourceRecord,
    cutoff,
    dob_candidates,
    name_variants,
    normalise_postcode,
    parse_date,
    to_datetime,
    to_fact,
)
from connectors.sources._sql_engine import describe_url, open_engine, read_only_connection
from connectors.sources._sql_schema import referenced_columns, verify_schema

__all__ = ["SqlSource"]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SqlSource:
    """Reads one agency's database per request; holds a connection pool, nothing else."""

    def __init__(self, mapping: Mapping, *, clock: Clock = _utc_now) -> None:
        """Raises ``MappingError`` if the mapping's source is not SQL or its URL is unusable."""
        if not isinstance(mapping.source, SqlSourceSpec):
            raise MappingError("source.kind: SqlSource needs a source of kind sql")
        self.mapping = mapping
        self._spec = mapping.source
        self._clock = clock
        self._where = describe_url(make_url(self._spec.url))
        self._engine = open_engine(self._spec)
        self._tables: dict[str, sa.Table] | None = None

    # -- schema ------------------------------------------------------------------------

    def _reflect(self) -> dict[str, sa.Table]:
        names = sorted({table for table, *_ in referenced_columns(self.mapping)})
        metadata = sa.MetaData()
        try:
            with self._engine.connect() as connection:
                existing = set(sa.inspect(connection).get_table_names())
                metadata.reflect(connection, only=[n for n in names if n in existing])
        except sa.exc.DBAPIError as exc:
            first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise MappingError(f"source.url: cannot reach {self._where}: {first}") from None
        return dict(metadata.tables)

    def _schema(self) -> dict[str, sa.Table]:
        if self._tables is None:
            tables = self._reflect()
            verify_schema(self.mapping, tables, self._where)
            self._tables = tables
        return self._tables

    def check(self) -> None:
        """Validate the mapping against the live database.

        Raises:
            MappingError: the database is unreachable, or a table or column is missing or
                of the wrong type (the message names it).
        """
        self._tables = None
        self._schema()

    # -- people ------------------------------------------------------------------------

    def _person_select(self) -> tuple[sa.Select[Any], sa.Table, sa.FromClause]:
        tables = self._schema()
        person = self.mapping.person
        p = tables[person.table]
        joined: sa.FromClause = p
        columns: list[sa.ColumnElement[Any]] = [
            p.c[person.key].label("key"),
            p.c[person.given_name].label("given_name"),
            p.c[person.family_name].label("family_name"),
        ]
        if person.date_of_birth is not None:
            columns.append(p.c[person.date_of_birth.column].label("dob"))
        if person.sex is not None:
            columns.append(p.c[person.sex.column].label("sex"))
        if person.address is not None:
            a = tables[person.address.table]
            joined = p.outerjoin(a, p.c[person.address.person_column] == a.c[person.address.key])
            columns.append(a.c[person.address.postcode].label("postcode"))
            if person.address.uprn is not None:
                columns.append(a.c[person.address.uprn].label("uprn"))
        else:
            if person.postcode is not None:
                columns.append(p.c[person.postcode].label("postcode"))
            if person.uprn is not None:
                columns.append(p.c[person.uprn].label("uprn"))
        for name, column in person.identifiers.items():
            columns.append(p.c[column].label(f"id_{name}"))
        return sa.select(*columns).select_from(joined), p, joined

    def _record(self, row: sa.Row[Any]) -> SourceRecord:
        person = self.mapping.person
        values = row._mapping
        sex = values.get("sex")
        if sex is not None and person.sex is not None:
            sex = person.sex.codes.get(str(sex), str(sex))
        dob_format = person.date_of_birth.format if person.date_of_birth else None
        uprn = values.get("uprn")
        identifiers = {
            name: str(values[f"id_{name}"]).strip()
            for name in person.identifiers
            if values[f"id_{name}"] not in (None, "")
        }
        return SourceRecord(
            key=str(values["key"]),
            given_name=values["given_name"],
            family_name=values["family_name"],
            date_of_birth=parse_date(values.get("dob"), dob_format),
            sex=sex,
            postcode=normalise_postcode(values.get("postcode")),
            uprn=None if uprn in (None, "") else str(uprn),
            identifiers=identifiers,
        )

    def _keys(self, table: sa.Table, column: str, keys: Sequence[str]) -> list[Any]:
        if isinstance(table.c[column].type, sa.Integer):
            return [int(key) for key in keys if key.isdigit()]
        return list(keys)

    def block(self, subject: Subject, limit: int) -> list[SourceRecord]:
        """Records sharing an identifier, a date of birth (or its day/month swap), a postcode,
        or both names with the subject; at most ``limit``.

        Raises:
            SourceError: the database could not be read (``SourceTimeout`` past the limit).
        """
        base, p, _ = self._person_select()
        person = self.mapping.person
        conditions: list[sa.ColumnElement[bool]] = []
        for name, column in person.identifiers.items():
            value = subject.identifiers.get(name)
            if value:
                conditions.append(p.c[column] == value.replace(" ", "").upper())
        if subject.date_of_birth is not None and person.date_of_birth is not None:
            dates = dob_candidates(subject.date_of_birth)
            fmt = person.date_of_birth.format
            values: list[Any] = [d.strftime(fmt) for d in dates] if fmt else dates
            conditions.append(p.c[person.date_of_birth.column].in_(values))
        postcode = normalise_postcode(subject.postcode)
        if postcode is not None:
            postcode_column = self._postcode_column()
            if postcode_column is not None:
                conditions.append(postcode_column.in_([postcode, postcode.replace(" ", "")]))
        conditions.append(
            sa.and_(
                p.c[person.family_name].in_(name_variants(subject.family_name, person.name_case)),
                p.c[person.given_name].in_(name_variants(subject.given_name, person.name_case)),
            )
        )
        query = sa.union(*(base.where(condition) for condition in conditions)).limit(limit)
        with self._connection() as connection:
            rows = connection.execute(query).all()
        return [self._record(row) for row in rows]

    def iter_records(self, batch: int = 5_000) -> Iterator[SourceRecord]:
        """Every person row, in canonical shape: for training and evaluating the match
        model on synthetic data, never used to answer a request.

        Raises:
            SourceError: the database could not be read.
        """
        base, _, _ = self._person_select()
        engine_timeout = max(self._spec.timeout_ms, 600_000)
        with read_only_connection(self._engine, engine_timeout, self._where) as connection:
            result = connection.execution_options(yield_per=batch).execute(base)
            for row in result:
                yield self._record(row)

    def _postcode_column(self) -> sa.ColumnElement[Any] | None:
        tables = self._schema()
        person = self.mapping.person
        if person.address is not None:
            return tables[person.address.table].c[person.address.postcode]
        if person.postcode is not None:
            return tables[person.table].c[person.postcode]
        return None

    def household(self, record_key: str) -> list[tuple[SourceRecord, str]]:
        """The other members of ``record_key``'s household, each with its relationship.

        Raises:
            SourceError: the database could not be read.
        """
        household = self.mapping.household
        if household is None:
            return []
        base, p, joined = self._person_select()
        person = self.mapping.person
        keys = self._keys(p, person.key, [record_key])
        if not keys:
            return []
        if isinstance(household, HouseholdLinkTable):
            link = self._schema()[household.table]
            query = (
                base.add_columns(link.c[household.relationship].label("relationship"))
                .select_from(joined.join(link, link.c[household.related] == p.c[person.key]))
                .where(link.c[household.person] == keys[0])
            )
        else:
            shared = (
                sa.select(p.c[household.column]).where(p.c[person.key] == keys[0])
            ).scalar_subquery()
            relationship: sa.ColumnElement[Any] = (
                p.c[household.relationship]
                if household.relationship is not None
                else sa.literal("household member")
            )
            query = base.add_columns(relationship.label("relationship")).where(
                p.c[household.column] == shared, p.c[person.key] != keys[0]
            )
        with self._connection() as connection:
            rows = connection.execute(query).all()
        return [(self._record(row), str(row._mapping["relationship"])) for row in rows]

    # -- facts -------------------------------------------------------------------------

    def fetch(self, record_keys: list[str], fields: list[str]) -> FetchResult:
        """Exactly ``fields`` for each key the source holds, with each value's as-of time.

        Keys the source does not hold are absent from the result.

        Raises:
            UnknownField: a field is not in the mapping.
            SourceError: the database could not be read.
        """
        unknown = [name for name in fields if name not in self.mapping.fields]
        if unknown:
            raise UnknownField(f"{self.mapping.agency.id} does not offer {unknown[0]}")
        specs = {name: self.mapping.fields[name] for name in dict.fromkeys(fields)}
        return self._compute(record_keys, specs)

    def flags(self, record_keys: list[str]) -> dict[str, frozenset[str]]:
        """The protective flags that are set, per key the source holds.

        Raises:
            SourceError: the database could not be read.
        """
        values = self._compute(record_keys, dict(self.mapping.flags))
        return {
            key: frozenset(name for name, (value, _) in facts.items() if value)
            for key, facts in values.items()
        }

    def _compute(self, record_keys: list[str], specs: dict[str, FieldSpec]) -> FetchResult:
        tables = self._schema()
        person = self.mapping.person
        p = tables[person.table]
        keys = self._keys(p, person.key, record_keys)
        if not keys:
            return {}
        now = self._clock()
        today = now.date()
        columns: list[sa.ColumnElement[Any]] = [p.c[person.key].label("key")]
        if person.as_of is not None:
            columns.append(p.c[person.as_of].label("row_as_of"))
        column_specs = {n: s for n, s in specs.items() if s.column is not None}
        for index, (_, spec) in enumerate(column_specs.items()):
            assert spec.column is not None  # noqa: S101 - filtered just above
            columns.append(p.c[spec.column].label(f"v{index}"))
            if spec.as_of is not None:
                columns.append(p.c[spec.as_of].label(f"a{index}"))
        groups: dict[tuple[str, str], list[tuple[str, FieldSpec]]] = {}
        for name, spec in specs.items():
            if spec.aggregate is not None:
                groups.setdefault((spec.aggregate.table, spec.aggregate.key), []).append(
                    (name, spec)
                )
        result: FetchResult = {}
        with self._connection() as connection:
            rows = connection.execute(sa.select(*columns).where(p.c[person.key].in_(keys)))
            row_as_of: dict[str, dt.datetime] = {}
            for row in rows:
                values = row._mapping
                key = str(values["key"])
                row_as_of[key] = to_datetime(values.get("row_as_of"), now)
                facts = result.setdefault(key, {})
                for index, (name, spec) in enumerate(column_specs.items()):
                    as_of = to_datetime(values.get(f"a{index}"), row_as_of[key])
                    facts[name] = (to_fact(spec, values[f"v{index}"]), as_of)
            if not result:
                return {}
            found = [k for k in keys if str(k) in result]
            for (table_name, key_column), members in groups.items():
                table = tables[table_name]
                aggregated = self._aggregate(
                    connection, table, key_column, members, keys=found, today=today
                )
                for key in result:
                    for name, spec in members:
                        raw, as_of_raw = aggregated.get((key, name), (None, None))
                        value = _aggregate_default(spec, raw)
                        result[key][name] = (value, to_datetime(as_of_raw, row_as_of[key]))
        return {key: {name: facts[name] for name in specs} for key, facts in result.items()}

    def _aggregate(
        self,
        connection: sa.Connection,
        table: sa.Table,
        key_column: str,
        members: list[tuple[str, FieldSpec]],
        *,
        keys: list[Any],
        today: dt.date,
    ) -> dict[tuple[str, str], tuple[object, object]]:
        out: dict[tuple[str, str], tuple[object, object]] = {}
        grouped: list[sa.ColumnElement[Any]] = []
        plain: list[tuple[str, FieldSpec]] = []
        for name, spec in members:
            agg = spec.aggregate
            assert agg is not None  # noqa: S101 - grouped by aggregate table
            if agg.function is AggregateFunction.LATEST:
                plain.append((name, spec))
                continue
            condition = self._condition(table, agg, today)
            grouped.append(_aggregate_expression(table, agg, condition).label(f"v_{len(grouped)}"))
            as_of = (
                sa.func.max(sa.case((condition, table.c[spec.as_of])))
                if spec.as_of is not None
                else sa.null()
            )
            grouped.append(as_of.label(f"v_{len(grouped)}"))
        if grouped:
            query = (
                sa.select(table.c[key_column].label("key"), *grouped)
                .where(table.c[key_column].in_(keys))
                .group_by(table.c[key_column])
            )
            names = [
                name
                for name, spec in members
                if spec.aggregate is not None
                and spec.aggregate.function is not AggregateFunction.LATEST
            ]
            for row in connection.execute(query):
                for index, name in enumerate(names):
                    out[(str(row[0]), name)] = (row[1 + 2 * index], row[2 + 2 * index])
        for name, spec in plain:
            agg = spec.aggregate
            assert agg is not None  # noqa: S101 - grouped by aggregate table
            assert agg.column is not None  # noqa: S101 - AggregateSpec guarantees it
            assert agg.order_by is not None  # noqa: S101 - AggregateSpec guarantees it
            as_of_column = table.c[spec.as_of] if spec.as_of is not None else sa.null()
            query = (
                sa.select(table.c[key_column], table.c[agg.column], as_of_column)
                .where(table.c[key_column].in_(keys), self._condition(table, agg, today))
                .order_by(table.c[key_column], table.c[agg.order_by].desc())
            )
            for row in connection.execute(query):
                out.setdefault((str(row[0]), name), (row[1], row[2]))
        return out

    def _condition(
        self, table: sa.Table, agg: AggregateSpec, today: dt.date
    ) -> sa.ColumnElement[bool]:
        parts: list[sa.ColumnElement[bool]] = []
        for name, wanted in agg.where.items():
            if isinstance(wanted, list):
                parts.append(table.c[name].in_(wanted))
            else:
                parts.append(table.c[name] == wanted)
        if agg.window is not None:
            start = cutoff(today, months=agg.window.months, days=agg.window.days)
            column = table.c[agg.window.column]
            parts.append(column >= _date_value(column, start))
        if agg.active_until is not None:
            column = table.c[agg.active_until]
            parts.append(sa.or_(column.is_(None), column >= _date_value(column, today)))
        return sa.and_(sa.true(), *parts)

    def _connection(self) -> Any:
        return read_only_connection(self._engine, self._spec.timeout_ms, self._where)

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __repr__(self) -> str:
        return f"SqlSource({self.mapping.agency.id!r}, {self._where!r})"


def _date_value(column: sa.ColumnElement[Any], day: dt.date) -> dt.date | dt.datetime:
    if isinstance(column.type, sa.DateTime):
        return dt.datetime(day.year, day.month, day.day)  # noqa: DTZ001 - naive column
    return day


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
