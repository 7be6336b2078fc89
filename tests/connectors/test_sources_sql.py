"""SQL sources on real SQLite, PostgreSQL and MariaDB databases of one synthetic town."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.errors import MappingError, SourceError, SourceTimeout, UnknownField
from connectors.mapping import parse_mapping
from connectors.protocol.messages import Subject
from connectors.sources import Source, SqlSource
from connectors.synth import AGENCY_NAMES
from tests.connectors.source_kit import agency_mapping, clock, write_town

PEOPLE = 400
HOSTILE = [
    "'; DROP TABLE pupils; --",
    "Robert'); DELETE FROM \"PERSON\" WHERE ('1'='1",
    "x' OR '1'='1",
    '" OR ""="',
    "%",
    "_",
    "\\'; SELECT pg_sleep(5); --",
]


@pytest.fixture(scope="module")
def sqlite_town(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("town")
    return out, write_town(out, PEOPLE)


@pytest.fixture(scope="module", params=["sqlite", "postgres", "mariadb"])
def backend(
    request: pytest.FixtureRequest, sqlite_town: tuple[Path, Any]
) -> Iterator[tuple[str, dict[str, Source], Any]]:
    """Every agency's source on one backend, with the town's truth."""
    town, truth = sqlite_town
    url: str | None = None
    if request.param != "sqlite":
        url = request.getfixturevalue(f"{request.param}_url")
        server_truth = write_town(town / request.param, PEOPLE, server_url=url)
        assert server_truth == truth
    sources: dict[str, Source] = {
        name: SqlSource(agency_mapping(name, town, url), clock=clock) for name in AGENCY_NAMES
    }
    yield request.param, sources, truth
    for source in sources.values():
        source.close()


def _person(truth: Any, agency: str, index: int = 0) -> tuple[dict[str, Any], str]:
    held = sorted(truth["agencies"][agency].items())
    key, person_id = held[index]
    person = next(p for p in truth["people"] if p["person_id"] == person_id)
    return person, key


def test_every_shipped_mapping_checks_against_its_database(backend: Any) -> None:
    _, sources, _ = backend
    for source in sources.values():
        source.check()


def test_block_finds_the_record_by_identifier_alone(backend: Any) -> None:
    _, sources, truth = backend
    for person_index in range(5):
        person, key = _person(truth, "health", person_index)
        subject = Subject(
            given_name="Nobody",
            family_name="Atall",
            identifiers={"nhs_number": person["nhs_number"]},
        )
        keys = [r.key for r in sources["health"].block(subject, 50)]
        if key in keys:
            break
    else:
        pytest.fail("no NHS number of the first five patients finds its record")


def test_block_finds_the_record_by_date_of_birth_in_every_agency(backend: Any) -> None:
    _, sources, truth = backend
    for agency, source in sources.items():
        found = 0
        for index in range(10):
            person, key = _person(truth, agency, index)
            subject = Subject(
                given_name=person["given_name"],
                family_name=person["family_name"],
                date_of_birth=dt.date.fromisoformat(person["date_of_birth"]),
                postcode=person["postcode"],
            )
            found += key in {r.key for r in source.block(subject, 200)}
        assert found >= 9, agency


def test_household_lists_the_other_members_with_relationships(backend: Any) -> None:
    _, sources, truth = backend
    people = {p["person_id"]: p for p in truth["people"]}
    for agency in ("health", "benefits", "social_care", "housing"):
        person, key = _person(truth, agency, 3)
        members = sources[agency].household(key)
        held = truth["agencies"][agency]
        expected = {
            k
            for k, pid in held.items()
            if people[pid]["household_id"] == person["household_id"] and k != key
        }
        assert {m.key for m, _ in members} == expected, agency
        assert all(relationship for _, relationship in members)


def test_fetch_returns_exactly_the_fields_asked_for(backend: Any) -> None:
    _, sources, truth = backend
    for agency, source in sources.items():
        keys = sorted(truth["agencies"][agency])[:5]
        fields = sorted(source.mapping.fields)
        for asked in (fields[:1], fields[1:3], fields):
            answer = source.fetch(keys, asked)
            assert set(answer) == set(keys), agency
            for facts in answer.values():
                assert list(facts) == asked
                for _, as_of in facts.values():
                    assert as_of.tzinfo is not None


def test_fetch_leaves_out_keys_the_agency_does_not_hold(backend: Any) -> None:
    _, sources, truth = backend
    key = sorted(truth["agencies"]["police"])[0]
    answer = sources["police"].fetch([key, "PN9999999", "nobody"], ["police.callouts_12m"])
    assert list(answer) == [key]


def test_fetch_refuses_a_field_the_mapping_does_not_offer(backend: Any) -> None:
    _, sources, truth = backend
    key = sorted(truth["agencies"]["education"])[0]
    with pytest.raises(UnknownField, match=r"health\.gp_contacts_12m"):
        sources["education"].fetch([key], ["education.attendance_rate", "health.gp_contacts_12m"])


def test_every_backend_gives_the_same_facts(backend: Any, sqlite_town: tuple[Path, Any]) -> None:
    name, sources, truth = backend
    town, _ = sqlite_town
    for agency, source in sources.items():
        reference = SqlSource(agency_mapping(agency, town), clock=clock)
        keys = sorted(truth["agencies"][agency])[:8]
        fields = sorted(source.mapping.fields)
        try:
            assert source.fetch(keys, fields) == reference.fetch(keys, fields), (name, agency)
            assert source.flags(keys) == reference.flags(keys)
        finally:
            reference.close()


@pytest.mark.parametrize("text", HOSTILE)
def test_sql_metacharacters_in_any_input_are_harmless(backend: Any, text: str) -> None:
    _, sources, truth = backend
    subject = Subject(
        given_name=text,
        family_name=text,
        postcode=text[:10],
        identifiers={"upn": text, "nhs_number": text},
    )
    for agency, source in sources.items():
        assert all(r.given_name != text for r in source.block(subject, 20))
        assert source.household(text) == []
        assert source.fetch([text, f"1 OR 1=1 {text}"], sorted(source.mapping.fields)[:2]) == {}
        keys = sorted(truth["agencies"][agency])[:2]
        assert set(source.fetch(keys, sorted(source.mapping.fields)[:1])) == set(keys)


def test_a_count_matches_the_bare_query(sqlite_town: tuple[Path, Any]) -> None:
    town, truth = sqlite_town
    source = SqlSource(agency_mapping("police", town), clock=clock)
    connection = sqlite3.connect(town / "police.db")
    try:
        for key in sorted(truth["agencies"]["police"])[:20]:
            expected = connection.execute(
                "SELECT count(*) FROM INCIDENT WHERE PERSON_ID = ? AND INC_TYPE = 'DA' "
                "AND INC_DT >= '2025-11-01'",
                (key,),
            ).fetchone()[0]
            facts = source.fetch([key], ["police.domestic_abuse_incidents_12m"])
            assert facts[key]["police.domestic_abuse_incidents_12m"][0] == expected
    finally:
        connection.close()
        source.close()


def test_the_sqlite_source_cannot_write(sqlite_town: tuple[Path, Any], tmp_path: Path) -> None:
    town, _ = sqlite_town
    before = (town / "education.db").read_bytes()
    source = SqlSource(agency_mapping("education", town), clock=clock)
    try:
        source.check()
        source.block(Subject(given_name="'; DELETE FROM pupils; --", family_name="x"), 10)
    finally:
        source.close()
    assert (town / "education.db").read_bytes() == before


def test_the_source_sessions_refuse_to_write(backend: Any) -> None:
    _, sources, _ = backend
    source = sources["education"]
    assert isinstance(source, SqlSource)
    with source.engine.connect() as connection, pytest.raises(sa.exc.DBAPIError):
        connection.execute(sa.text("UPDATE pupils SET forename = 'X'"))
    with source.engine.connect() as connection, pytest.raises(sa.exc.DBAPIError):
        connection.execute(sa.text("CREATE TABLE intruder (a INTEGER)"))


def test_postgres_sessions_carry_the_time_limit(
    sqlite_town: tuple[Path, Any], postgres_url: str
) -> None:
    town, _ = sqlite_town
    mapping = agency_mapping("health", town, postgres_url)
    quick = mapping.model_copy(
        update={"source": mapping.source.model_copy(update={"timeout_ms": 50})}
    )
    source = SqlSource(quick)
    try:
        with (
            source.engine.connect() as connection,
            pytest.raises(sa.exc.OperationalError, match="timeout"),
        ):
            connection.execute(sa.text("SELECT pg_sleep(1)"))
    finally:
        source.close()


@pytest.mark.slow
def test_a_slow_sqlite_read_is_cut_off_at_the_time_limit(tmp_path: Path) -> None:
    database = tmp_path / "slow.db"
    connection = sqlite3.connect(database)
    connection.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, given TEXT, family TEXT)")
    connection.executemany(
        "INSERT INTO people (given, family) VALUES (?, ?)",
        ((f"G{i}", f"F{i}") for i in range(400_000)),
    )
    connection.commit()
    connection.close()
    text = f"""
agency: {{id: slow, name: Slow, type: test}}
source: {{kind: sql, url: "sqlite:///{database}", timeout_ms: 10}}
person: {{table: people, key: id, given_name: given, family_name: family}}
fields:
  test.given: {{type: string, sensitivity: ordinary, column: given}}
"""
    source = SqlSource(parse_mapping(text))
    try:
        source.check()
        # No index on the names: the blocking query scans 400,000 rows.
        with pytest.raises(SourceTimeout, match="longer than 10 ms"):
            source.block(Subject(given_name="Nobody", family_name="Here"), 10)
    finally:
        source.close()


def test_a_person_key_on_two_rows_fails_check_and_is_never_answered(
    sqlite_town: tuple[Path, Any], tmp_path: Path
) -> None:
    # A person table without a primary key (an export, a legacy system) can hold one key
    # twice: a match on one person could then be answered with the other's facts.
    town, truth = sqlite_town
    database = tmp_path / "police.db"
    database.write_bytes((town / "police.db").read_bytes())
    key = sorted(truth["agencies"]["police"])[0]
    with sqlite3.connect(database) as connection:
        (schema,) = connection.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'PERSON'"
        ).fetchone()
        without_key = re.sub(r',\s*PRIMARY KEY \("PERSON_ID"\)', "", schema)
        connection.execute(without_key.replace('"PERSON"', '"PEOPLE"'))
        connection.execute('INSERT INTO "PEOPLE" SELECT * FROM "PERSON"')
        connection.execute(
            """INSERT INTO "PEOPLE" SELECT "PERSON_ID", 'MALLORY', "LAST_NM", "DOB_TXT",
            "SEX_CD", "ADDR_ID", "PNC_ID", "LAST_UPD_TS" FROM "PERSON" WHERE "PERSON_ID" = ?""",
            (key,),
        )
    mapping = agency_mapping("police", tmp_path)
    person = mapping.person.model_copy(update={"table": "PEOPLE"})
    source = SqlSource(mapping.model_copy(update={"person": person}), clock=clock)
    try:
        with pytest.raises(MappingError) as caught:
            source.check()
        assert caught.value.detail == (
            f"person.key: PEOPLE.PERSON_ID holds {key!r} on more than one row; each person "
            "needs a key of their own (a primary key or unique index on it makes sure)"
        )
        for read in (source.flags, lambda keys: source.fetch(keys, ["police.callouts_12m"])):
            with pytest.raises(SourceError) as refused:
                read([key])
            assert refused.value.detail == (
                "PEOPLE.PERSON_ID holds one value on more than one row; "
                "junction connector check names it"
            )
    finally:
        source.close()
