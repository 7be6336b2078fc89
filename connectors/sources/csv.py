"""An agency source kept as CSV files (for the smallest agencies).

Each table is ``<directory>/<table>.csv`` with a header row; dates are ISO 8601 unless the
mapping gives a format. Files are read per request and streamed: the connector keeps no
copy of the data between requests.
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

from connectors.encoding import not_utf8
from connectors.errors import MappingError, SourceError, SourceTimeout, UnknownField
from connectors.mapping import (
    AggregateFunction,
    AggregateSpec,
    CsvSourceSpec,
    FieldSpec,
    HouseholdLinkTable,
    Mapping,
)
from connectors.protocol.messages import FactValue, Subject
from connectors.sources._base import (
    Clock,
    FetchResult,
    SourceRecord,
    cutoff,
    date_format_problem,
    dob_candidates,
    name_variants,
    normalise_postcode,
    parse_date,
    to_datetime,
    to_fact,
)
from connectors.sources._sql_schema import ColumnKind, referenced_columns

__all__ = ["CsvSource"]

Row = dict[str, str]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _kind_ok(value: str, kind: ColumnKind) -> bool:
    if value == "" or kind in ("any", "text"):
        return True
    if kind == "date":
        return parse_date(value, None) is not None
    try:
        float(value)
    except ValueError:
        return False
    return True


class CsvSource:
    """Reads one agency's CSV directory per request."""

    def __init__(self, mapping: Mapping, *, clock: Clock = _utc_now) -> None:
        """Raises ``MappingError`` if the mapping's source is not of kind csv."""
        if not isinstance(mapping.source, CsvSourceSpec):
            raise MappingError("source.kind: CsvSource needs a source of kind csv")
        self.mapping = mapping
        self._directory = mapping.source.directory
        self._timeout = mapping.source.timeout_ms / 1000
        self._clock = clock
        self._read: dict[str, set[str]] = {}
        for table, column, _, _ in referenced_columns(mapping):
            self._read.setdefault(table, set()).add(column)

    def _path(self, table: str) -> Path:
        return self._directory / f"{table}.csv"

    def _rows(self, table: str, deadline: float) -> Iterator[Row]:
        for _, row in self._numbered(table, deadline):
            yield row

    def _numbered(self, table: str, deadline: float) -> Iterator[tuple[int, Row]]:
        """Each row of a table's file, with the line it ends on. Raises ``SourceError``
        for a file that cannot be read, is not UTF-8, has a row of the wrong length, or
        names a column the mapping reads more than once."""
        path = self._path(table)
        try:
            # utf-8-sig: spreadsheet programs put a byte order mark before the header.
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.reader(handle)
                header = next(reader, [])
                repeated = _repeated(table, header, self._read.get(table, set()))
                if repeated is not None:
                    raise SourceError(repeated)
                width = len(header)
                for count, values in enumerate(reader):
                    if count % 4096 == 0 and time.monotonic() > deadline:
                        raise SourceTimeout(f"reading {table}.csv took longer than the limit")
                    if not values:
                        continue  # a blank line, as csv.DictReader skips it
                    if len(values) != width:
                        detail = f"line {reader.line_num} of {table}.csv has {len(values)} values"
                        raise SourceError(f"{detail}; its header names {width}")
                    row = dict(zip(header, values, strict=True))
                    yield reader.line_num, row
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SourceError(not_utf8(path)) from None

    def _deadline(self) -> float:
        return time.monotonic() + self._timeout

    def check(self) -> None:
        """Validate the mapping against the CSV files.

        Raises:
            MappingError: the directory is missing; listing every missing file, missing
                column, and column whose first values are not of the kind the mapping
                needs; or the first dates of birth do not fit the mapping's format.
        """
        if not self._directory.is_dir():
            raise MappingError(f"source.directory: {self._directory} is not a directory")
        headers: dict[str, list[str]] = {}
        samples: dict[str, list[Row]] = {}
        problems: list[str] = []
        missing: set[str] = set()
        for table, column, kind, where in referenced_columns(self.mapping):
            if table in missing:
                continue
            if table not in headers:
                if not self._path(table).is_file():
                    missing.add(table)
                    problems.append(f"{where}: table {table} not found in {self._directory}")
                    continue
                headers[table], samples[table] = self._sample(table, where)
            if column not in headers[table]:
                problems.append(f"{where}: column {table}.{column} not found in {table}.csv")
                continue
            wrong = next((r[column] for r in samples[table] if not _kind_ok(r[column], kind)), None)
            if wrong is not None:
                problems.append(
                    f"{where}: column {table}.{column} holds {wrong!r}, expected {kind}"
                )
        if problems:
            raise MappingError.listing(problems)
        dob, table = self.mapping.person.date_of_birth, self.mapping.person.table
        if dob is not None and dob.format is not None:
            values = [row[dob.column] for row in samples[table]]
            problem = date_format_problem(values, dob.format, f"{table}.{dob.column}")
            if problem is not None:
                raise MappingError(f"person.date_of_birth: {problem}")
        self._check_keys()

    def _check_keys(self) -> None:
        """Every row of the person file has a key of its own. Raises ``MappingError``."""
        person = self.mapping.person
        seen: dict[str, int] = {}
        try:
            for line, row in self._numbered(person.table, deadline=float("inf")):
                key = row[person.key]
                first = seen.setdefault(key, line)
                if key == "":
                    raise MappingError(
                        f"person.key: line {line} of {person.table}.csv has no {person.key}"
                    )
                if first != line:
                    raise MappingError(
                        f"person.key: lines {first} and {line} of {person.table}.csv hold "
                        f"the same {person.key} {key!r}; each person needs a key of their own"
                    )
        except SourceError as exc:
            raise MappingError(f"person.key: {exc.detail}") from None

    def _sample(self, table: str, where: str) -> tuple[list[str], list[Row]]:
        """The header and first rows of a table's file. Raises ``MappingError``."""
        path = self._path(table)
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                header = next(csv.reader(handle), [])
            rows = self._numbered(table, deadline=float("inf"))
            return header, [row for _, (_, row) in zip(range(50), rows, strict=False)]
        except OSError as exc:
            raise MappingError(f"{where}: cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise MappingError(f"{where}: {not_utf8(path)}") from None
        except SourceError as exc:
            raise MappingError(f"{where}: {exc.detail}") from None

    # -- people ------------------------------------------------------------------------

    def _addresses(self, deadline: float) -> dict[str, Row]:
        address = self.mapping.person.address
        if address is None:
            return {}
        return {row[address.key]: row for row in self._rows(address.table, deadline)}

    def _record(self, row: Row, addresses: dict[str, Row]) -> SourceRecord:
        person = self.mapping.person
        postcode = row.get(person.postcode) if person.postcode else None
        uprn = row.get(person.uprn) if person.uprn else None
        if person.address is not None:
            found = addresses.get(row[person.address.person_column], {})
            postcode = found.get(person.address.postcode)
            uprn = found.get(person.address.uprn) if person.address.uprn else None
        sex = row.get(person.sex.column) if person.sex else None
        if sex is not None and person.sex is not None:
            sex = person.sex.codes.get(sex, sex) or None
        dob = person.date_of_birth
        return SourceRecord(
            key=row[person.key],
            given_name=row[person.given_name] or None,
            family_name=row[person.family_name] or None,
            date_of_birth=parse_date(row[dob.column], dob.format) if dob else None,
            sex=sex,
            postcode=normalise_postcode(postcode),
            uprn=uprn or None,
            identifiers={n: row[c].strip() for n, c in person.identifiers.items() if row[c]},
        )

    def block(self, subject: Subject, limit: int) -> list[SourceRecord]:
        """Records sharing an identifier, a date of birth (or swap), a postcode, or both
        names with the subject; at most ``limit``.

        Raises:
            SourceError: a file could not be read (``SourceTimeout`` past the limit).
        """
        deadline = self._deadline()
        person = self.mapping.person
        addresses = self._addresses(deadline)
        wanted_ids = {
            column: value.replace(" ", "").upper()
            for name, column in person.identifiers.items()
            if (value := subject.identifiers.get(name))
        }
        dobs: set[str] = set()
        if subject.date_of_birth is not None and person.date_of_birth is not None:
            fmt = person.date_of_birth.format
            dobs = {
                d.strftime(fmt) if fmt else d.isoformat()
                for d in dob_candidates(subject.date_of_birth)
            }
        postcode = normalise_postcode(subject.postcode)
        families = set(name_variants(subject.family_name, person.name_case))
        givens = set(name_variants(subject.given_name, person.name_case))
        found: list[SourceRecord] = []
        for row in self._rows(person.table, deadline):
            record_postcode = None
            if postcode is not None:
                record_postcode = self._record(row, addresses).postcode
            if (
                any(row[column] == value for column, value in wanted_ids.items())
                or (person.date_of_birth is not None and row[person.date_of_birth.column] in dobs)
                or (postcode is not None and record_postcode == postcode)
                or (row[person.family_name] in families and row[person.given_name] in givens)
            ):
                found.append(self._record(row, addresses))
                if len(found) >= limit:
                    break
        return found

    def household(self, record_key: str) -> list[tuple[SourceRecord, str]]:
        """The other members of ``record_key``'s household, each with its relationship.

        Raises:
            SourceError: a file could not be read.
        """
        household = self.mapping.household
        if household is None:
            return []
        deadline = self._deadline()
        person = self.mapping.person
        addresses = self._addresses(deadline)
        people = list(self._rows(person.table, deadline))
        if isinstance(household, HouseholdLinkTable):
            related = {
                row[household.related]: row[household.relationship]
                for row in self._rows(household.table, deadline)
                if row[household.person] == record_key
            }
            return [
                (self._record(row, addresses), related[row[person.key]])
                for row in people
                if row[person.key] in related
            ]
        own = next((row for row in people if row[person.key] == record_key), None)
        if own is None or own[household.column] == "":
            return []
        return [
            (
                self._record(row, addresses),
                row[household.relationship] if household.relationship else "household member",
            )
            for row in people
            if row[household.column] == own[household.column] and row[person.key] != record_key
        ]

    # -- facts -------------------------------------------------------------------------

    def fetch(self, record_keys: list[str], fields: list[str]) -> FetchResult:
        """Exactly ``fields`` for each key the source holds, with each value's as-of time.

        Raises:
            UnknownField: a field is not in the mapping.
            SourceError: a file could not be read.
        """
        unknown = [name for name in fields if name not in self.mapping.fields]
        if unknown:
            raise UnknownField(f"{self.mapping.agency.id} does not offer {unknown[0]}")
        return self._compute(record_keys, {n: self.mapping.fields[n] for n in fields})

    def flags(self, record_keys: list[str]) -> dict[str, frozenset[str]]:
        """The protective flags that are set, per key the source holds."""
        values = self._compute(record_keys, dict(self.mapping.flags))
        return {
            key: frozenset(name for name, (value, _) in facts.items() if value)
            for key, facts in values.items()
        }

    def _compute(self, record_keys: list[str], specs: dict[str, FieldSpec]) -> FetchResult:
        deadline = self._deadline()
        person = self.mapping.person
        wanted = set(record_keys)
        now = self._clock()
        rows: dict[str, Row] = {}
        for row in self._rows(person.table, deadline):
            if row[person.key] in wanted:
                # Never one person's facts for another's: check names the rows.
                if row[person.key] in rows:
                    raise SourceError(
                        f"{person.table}.csv holds one {person.key} on more than one row; "
                        "junction connector check names them"
                    )
                rows[row[person.key]] = row
        result: FetchResult = {}
        related: dict[str, list[Row]] = {}
        for key, row in rows.items():
            row_as_of = to_datetime(row[person.as_of], now) if person.as_of else now
            facts: dict[str, tuple[FactValue, dt.datetime]] = {}
            for name, spec in specs.items():
                if spec.column is not None:
                    as_of = to_datetime(row[spec.as_of], row_as_of) if spec.as_of else row_as_of
                    facts[name] = (to_fact(spec, row[spec.column] or None), as_of)
                    continue
                agg = spec.aggregate
                assert agg is not None  # noqa: S101 - FieldSpec guarantees one
                if agg.table not in related:
                    related[agg.table] = [
                        r for r in self._rows(agg.table, deadline) if r[agg.key] in wanted
                    ]
                mine = [
                    r
                    for r in related[agg.table]
                    if r[agg.key] == key and _matches(r, agg, now.date())
                ]
                as_of_values = [r[spec.as_of] for r in mine if spec.as_of and r[spec.as_of]]
                as_of = to_datetime(max(as_of_values), row_as_of) if as_of_values else row_as_of
                facts[name] = (_aggregate(spec, agg, mine), as_of)
            result[key] = facts
        return result

    def close(self) -> None:
        """Nothing is held between requests."""


def _repeated(table: str, header: list[str], read: set[str]) -> str | None:
    """Why the header cannot be read, if it names a column the mapping reads twice: a
    row would hold only the last of its values, unnoticed."""
    for position, name in enumerate(header):
        if name in read and name in header[:position]:
            first = header.index(name) + 1
            return (
                f"the header of {table}.csv names {name} twice (columns {first} and "
                f"{position + 1}); rename or remove one"
            )
    return None


def _matches(row: Row, agg: AggregateSpec, today: dt.date) -> bool:
    for column, wanted in agg.where.items():
        options = wanted if isinstance(wanted, list) else [wanted]
        if row[column] not in {str(option) for option in options}:
            return False
    if agg.window is not None:
        day = parse_date(row[agg.window.column], None)
        start = cutoff(today, months=agg.window.months, days=agg.window.days)
        if day is None or day < start:
            return False
    if agg.active_until is not None:
        end = parse_date(row[agg.active_until], None)
        if end is not None and end < today:
            return False
    return True


def _aggregate(spec: FieldSpec, agg: AggregateSpec, rows: list[Row]) -> FactValue:
    if agg.function is AggregateFunction.COUNT:
        return to_fact(spec, len(rows))
    if agg.function is AggregateFunction.EXISTS:
        return to_fact(spec, bool(rows))
    assert agg.column is not None  # noqa: S101 - AggregateSpec guarantees it
    values = [r[agg.column] for r in rows if r[agg.column] != ""]
    if agg.function is AggregateFunction.SUM:
        try:
            return to_fact(spec, sum(float(v) for v in values))
        except ValueError:
            raise SourceError(
                f"{agg.table}.{agg.column} holds a value that is not a number"
            ) from None
    if agg.function is AggregateFunction.LATEST:
        assert agg.order_by is not None  # noqa: S101 - AggregateSpec guarantees it
        latest = max(rows, key=lambda r: r[agg.order_by or ""], default=None)
        return to_fact(spec, latest[agg.column] if latest else None)
    if not values:
        return to_fact(spec, None)
    pick = min if agg.function is AggregateFunction.MIN else max
    try:
        return to_fact(spec, pick(values, key=float))
    except ValueError:
        return to_fact(spec, pick(values))
