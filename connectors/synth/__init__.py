"""A synthetic town and its six agency databases, for the demo, tests and benchmarks.

``synthesise`` builds a town of households (``_town``), then one database per agency
(``_agencies``), each with its own ids, table and column names, and the errors real
records carry (``_noise``). Which record is which true person goes to a separate ground
truth file (``truth.json`` and ``truth.csv``), never into the agency databases.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from connectors.synth._agencies import AGENCIES, AgencyData
from connectors.synth._town import Town, build_town

__all__ = ["AGENCY_NAMES", "SynthError", "SynthResult", "load_truth", "synthesise"]

AGENCY_NAMES = tuple(AGENCIES)
_CHUNK = 5_000


class SynthError(Exception):
    """The town could not be written (bad output directory or database URL)."""

    code = "synth-failed"
    title = "The synthetic town could not be written"
    status = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SynthResult:
    people: int
    households: int
    records: dict[str, int]
    databases: dict[str, str]


# Called with (rows written so far, rows to write in all).
Progress = Callable[[int, int], None]


def _seed(seed: int, agency: str) -> int:
    return seed * 1_000 + AGENCY_NAMES.index(agency) + 1


def _sqlite_writer(path: Path) -> sa.Engine:
    path.unlink(missing_ok=True)
    engine = sa.create_engine(f"sqlite:///{path}")

    @sa.event.listens_for(engine, "connect")
    def _fast(dbapi_connection: object, _record: object) -> None:
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cursor.execute("PRAGMA journal_mode=OFF")
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    return engine


def _server_engine(url_template: str, agency: str) -> tuple[sa.Engine, str]:
    """An engine for the agency's database; ``{agency}`` in the URL gives each its own."""
    text = url_template.replace("{agency}", agency)
    try:
        url = make_url(text)
    except sa.exc.ArgumentError:
        raise SynthError(f"not a valid SQLAlchemy URL: {url_template}") from None
    if "{agency}" in url_template and url.database:
        admin_db = "postgres" if url.get_backend_name() == "postgresql" else None
        admin = sa.create_engine(url.set(database=admin_db), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                if url.get_backend_name() == "postgresql":
                    exists = connection.execute(
                        sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                        {"name": url.database},
                    ).first()
                    if exists is None:
                        connection.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
                else:
                    connection.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS `{url.database}`"))
        except sa.exc.DBAPIError as exc:
            raise SynthError(f"cannot create database {url.database}: {exc.orig}") from None
        finally:
            admin.dispose()
    return sa.create_engine(url), url.render_as_string(hide_password=True)


def _write(engine: sa.Engine, data: AgencyData, progress: Callable[[int], None]) -> None:
    try:
        with engine.begin() as connection:
            data.metadata.drop_all(connection)
            data.metadata.create_all(connection)
            for table in data.metadata.sorted_tables:
                rows = data.rows[table.name]
                for start in range(0, len(rows), _CHUNK):
                    chunk = rows[start : start + _CHUNK]
                    connection.execute(table.insert(), chunk)
                    progress(len(chunk))
            # Fresh tables have no planner statistics; a real agency database has them.
            preparer = connection.dialect.identifier_preparer
            for table in data.metadata.sorted_tables:
                name = preparer.quote(table.name)
                if connection.dialect.name in ("mysql", "mariadb"):
                    connection.exec_driver_sql(f"ANALYZE TABLE {name}").all()
                else:
                    connection.exec_driver_sql(f"ANALYZE {name}")
    except sa.exc.DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0]
        raise SynthError(f"cannot write the {data.name} database: {first}") from None
    finally:
        engine.dispose()


def _write_truth(out: Path, town: Town, agencies: Iterable[AgencyData]) -> None:
    records = {data.name: data.truth for data in agencies}
    by_person: dict[str, dict[str, str]] = {}
    for name, truth in records.items():
        for key, person_id in truth.items():
            by_person.setdefault(person_id, {})[name] = key
    people = []
    for household in town.households:
        for p in household.members:
            people.append(
                {
                    "person_id": p.person_id,
                    "household_id": p.household_id,
                    "role": p.role,
                    "given_name": p.given_name,
                    "family_name": p.family_name,
                    "sex": p.sex,
                    "date_of_birth": p.date_of_birth.isoformat(),
                    "postcode": household.postcode,
                    "uprn": household.uprn,
                    "nhs_number": p.nhs_number,
                    "ni_number": p.ni_number,
                    "upn": p.upn,
                    "records": by_person.get(p.person_id, {}),
                }
            )
    document = {
        "reference_date": town.reference_date.isoformat(),
        "people": people,
        "agencies": records,
    }
    (out / "truth.json").write_text(json.dumps(document, indent=1), encoding="utf-8")
    columns = [k for k in people[0] if k != "records"] + list(AGENCY_NAMES)
    with (out / "truth.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for person in people:
            row = {k: v for k, v in person.items() if k != "records"}
            row.update(by_person.get(str(person["person_id"]), {}))
            writer.writerow(row)


def synthesise(
    people: int,
    out: Path,
    *,
    seed: int = 1,
    reference_date: dt.date,
    server_urls: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> SynthResult:
    """Build a town of about ``people`` people and write its six agency databases.

    SQLite files ``<agency>.db`` go into ``out`` unless ``server_urls`` gives a URL for
    the agency (``{agency}`` in a URL names a database per agency, created if missing).
    The same ``seed`` and ``reference_date`` give the same town.

    Raises:
        SynthError: ``out`` cannot be written or a database cannot be reached.
    """
    if people < 1:
        raise SynthError("the town needs at least one person")
    report = progress or (lambda _done, _total: None)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SynthError(f"cannot create {out}: {exc.strerror}") from None
    town = build_town(people, seed=seed, reference_date=reference_date)
    datasets = [
        build(town, random.Random(_seed(seed, name)))  # noqa: S311 - synthetic data
        for name, build in AGENCIES.items()
    ]
    total = sum(len(rows) for data in datasets for rows in data.rows.values())
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        report(done, total)

    report(0, total)
    databases: dict[str, str] = {}
    for data in datasets:
        url = (server_urls or {}).get(data.name)
        if url is None:
            engine = _sqlite_writer(out / f"{data.name}.db")
            databases[data.name] = str(out / f"{data.name}.db")
        else:
            engine, databases[data.name] = _server_engine(url, data.name)
        _write(engine, data, advance)
    _write_truth(out, town, datasets)
    return SynthResult(
        people=len(town.people),
        households=len(town.households),
        records={data.name: len(data.truth) for data in datasets},
        databases=databases,
    )


def load_truth(path: Path) -> dict[str, object]:
    """Read a ``truth.json`` written by ``synthesise``."""
    loaded: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return loaded
