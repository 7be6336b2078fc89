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

from connectors.errors import MappingError, UnknownField
from connectors.mapping import (
    FieldSpec,
    HouseholdLinkTable,
    Mapping,
    SqlSourceSpec,
)
from connectors.protocol.messages import Subject
from connectors.sources._base import (
    DATE_SAMPLE,
    Clock,
    FetchResult,
    SourceRecord,
    date_format_problem,
    dob_candidates,
    name_variants,
    normalise_postcode,
    parse_date,
)
from connectors.sources._sql_engine import (
    describe_url,
    open_engine,
    parse_source_url,
    read_only_connection,
)
from connectors.sources._sql_facts import FactPlan
from connectors.sources._sql_schema import referenced_columns, verify_schema

__all__ = ["SqlSource"]

# Field sets are few (what a sharing agreement allows); the bound keeps memory flat.
_PLAN_CACHE = 256


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
        self._where = describe_url(parse_source_url(self._spec.url))
        self._engine = open_engine(self._spec)
        self._tables: dict[str, sa.Table] | None = None
        self._plans: dict[tuple[str, ...], FactPlan] = {}
        self._block_statements: dict[tuple[tuple[str, ...], bool, bool], Any] = {}
        self._household_statement: sa.Select[Any] | None = None

    @property
    def engine(self) -> sa.Engine:
        """The pooled engine, for instrumentation (timing the bare queries, metrics)."""
        return self._engine

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
            MappingError: the database is unreachable, a table or column is missing or
                of the wrong type (the message names it), or the first dates of birth
                stored as text do not fit the mapping's format.
        """
        tables = self._reflect()
        verify_schema(self.mapping, tables, self._where)
        self._check_date_format(tables)
        self._check_unique_keys(tables)
        # Only a schema that checked out replaces the one requests are being served with:
        # a failed readiness probe must not leave later requests without a schema.
        self._tables = tables
        self._plans = {}
        self._block_statements = {}
        self._household_statement = None

    def _check_unique_keys(self, tables: dict[str, sa.Table]) -> None:
        """Each person row has a key of its own. Raises ``MappingError`` naming one that
        does not; a key the database itself keeps unique is not read."""
        person = self.mapping.person
        table = tables[person.table]
        column = table.c[person.key]
        if list(table.primary_key.columns) == [column] or any(
            index.unique and list(index.columns) == [column] for index in table.indexes
        ):
            return
        query = sa.select(column).group_by(column).having(sa.func.count() > 1).limit(1)
        try:
            with self._engine.connect() as connection:
                twice = connection.execute(query).scalars().first()
        except sa.exc.DBAPIError as exc:
            first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise MappingError(f"person.key: cannot read {self._where}: {first}") from None
        if twice is not None:
            raise MappingError(
                f"person.key: {person.table}.{person.key} holds {twice!r} on more than one "
                "row; each person needs a key of their own (a primary key or unique index "
                "on it makes sure)"
            )

    def _check_date_format(self, tables: dict[str, sa.Table]) -> None:
        dob = self.mapping.person.date_of_birth
        if dob is None or dob.format is None:
            return
        column = tables[self.mapping.person.table].c[dob.column]
        query = sa.select(column).where(column.is_not(None)).limit(DATE_SAMPLE)
        try:
            with self._engine.connect() as connection:
                values = connection.execute(query).scalars().all()
        except sa.exc.DBAPIError as exc:
            first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise MappingError(
                f"person.date_of_birth: cannot read {self._where}: {first}"
            ) from None
        problem = date_format_problem(values, dob.format, f"{column.table.name}.{column.name}")
        if problem is not None:
            raise MappingError(f"person.date_of_birth: {problem}")

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
        person = self.mapping.person
        p = self._schema()[person.table]
        params: dict[str, Any] = {}
        identifiers: list[str] = []
        for name, column in person.identifiers.items():
            value = (subject.identifiers.get(name) or "").replace(" ", "").upper()
            if value and (not isinstance(p.c[column].type, sa.Integer) or value.isdigit()):
                identifiers.append(name)
                params[f"id_{name}"] = value
        has_dob = subject.date_of_birth is not None and person.date_of_birth is not None
        if subject.date_of_birth is not None and person.date_of_birth is not None:
            dates = dob_candidates(subject.date_of_birth)
            fmt = person.date_of_birth.format
            params["dobs"] = [d.strftime(fmt) for d in dates] if fmt else dates
        postcode = normalise_postcode(subject.postcode)
        has_postcode = postcode is not None and self._postcode_column() is not None
        if postcode is not None:
            params["postcodes"] = [postcode, postcode.replace(" ", "")]
        params["families"] = name_variants(subject.family_name, person.name_case)
        params["givens"] = name_variants(subject.given_name, person.name_case)
        params["limit"] = limit
        shape = (tuple(identifiers), has_dob, has_postcode)
        query = self._block_statements.get(shape)
        if query is None:
            query = self._block_statements[shape] = self._block_statement(*shape)
        with self._connection() as connection:
            rows = connection.execute(query, params).all()
        return [self._record(row) for row in rows]

    def _block_statement(
        self, identifiers: tuple[str, ...], has_dob: bool, has_postcode: bool
    ) -> sa.CompoundSelect[Any]:
        base, p, _ = self._person_select()
        person = self.mapping.person
        conditions: list[sa.ColumnElement[bool]] = [
            p.c[person.identifiers[name]] == sa.bindparam(f"id_{name}") for name in identifiers
        ]
        if has_dob and person.date_of_birth is not None:
            dobs: sa.BindParameter[Any] = sa.bindparam("dobs", expanding=True)
            conditions.append(p.c[person.date_of_birth.column].in_(dobs))
        postcode_column = self._postcode_column()
        if has_postcode and postcode_column is not None:
            conditions.append(postcode_column.in_(sa.bindparam("postcodes", expanding=True)))
        conditions.append(
            sa.and_(
                p.c[person.family_name].in_(sa.bindparam("families", expanding=True)),
                p.c[person.given_name].in_(sa.bindparam("givens", expanding=True)),
            )
        )
        union = sa.union(*(base.where(condition) for condition in conditions))
        return union.limit(sa.bindparam("limit", type_=sa.Integer))

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
        person = self.mapping.person
        keys = self._keys(self._schema()[person.table], person.key, [record_key])
        if not keys:
            return []
        if self._household_statement is None:
            self._household_statement = self._household_query()
        with self._connection() as connection:
            rows = connection.execute(self._household_statement, {"member": keys[0]}).all()
        return [(self._record(row), str(row._mapping["relationship"])) for row in rows]

    def _household_query(self) -> sa.Select[Any]:
        household = self.mapping.household
        assert household is not None  # noqa: S101 - only called with a household
        base, p, joined = self._person_select()
        person = self.mapping.person
        member = sa.bindparam("member", type_=p.c[person.key].type)
        if isinstance(household, HouseholdLinkTable):
            link = self._schema()[household.table]
            return (
                base.add_columns(link.c[household.relationship].label("relationship"))
                .select_from(joined.join(link, link.c[household.related] == p.c[person.key]))
                .where(link.c[household.person] == member)
            )
        shared = (
            sa.select(p.c[household.column]).where(p.c[person.key] == member)
        ).scalar_subquery()
        relationship: sa.ColumnElement[Any] = (
            p.c[household.relationship]
            if household.relationship is not None
            else sa.literal("household member")
        )
        return base.add_columns(relationship.label("relationship")).where(
            p.c[household.column] == shared, p.c[person.key] != member
        )

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
        keys = self._keys(tables[person.table], person.key, record_keys)
        if not keys:
            return {}
        signature = tuple(specs)
        plan = self._plans.get(signature)
        if plan is None:
            plan = FactPlan.build(tables, person, specs)
            if len(self._plans) < _PLAN_CACHE:
                self._plans[signature] = plan
        with self._connection() as connection:
            return plan.run(connection, keys, self._clock())

    def _connection(self) -> Any:
        return read_only_connection(self._engine, self._spec.timeout_ms, self._where)

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __repr__(self) -> str:
        return f"SqlSource({self.mapping.agency.id!r}, {self._where!r})"
