"""The synthetic town: deterministic, realistic errors, truth kept apart, fast enough."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from broker.cli import app
from connectors.protocol.identifiers import canonical
from connectors.synth import AGENCY_NAMES, SynthError, synthesise
from tests.connectors.source_kit import TODAY, write_town


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("town")
    return out, write_town(out, 3000, seed=21)


def _rows(database: Path, query: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(database)
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


def test_the_same_seed_gives_the_same_town_and_another_seed_does_not(tmp_path: Path) -> None:
    first = write_town(tmp_path / "a", 300, seed=4)
    again = write_town(tmp_path / "b", 300, seed=4)
    other = write_town(tmp_path / "c", 300, seed=5)
    assert first == again
    assert first["people"] != other["people"]
    assert _rows(tmp_path / "a" / "police.db", "SELECT * FROM PERSON") == _rows(
        tmp_path / "b" / "police.db", "SELECT * FROM PERSON"
    )


def test_households_have_one_to_six_people_with_relationships(town: tuple[Path, Any]) -> None:
    _, truth = town
    sizes: dict[int, int] = {}
    for person in truth["people"]:
        sizes[person["household_id"]] = sizes.get(person["household_id"], 0) + 1
    assert 2900 <= len(truth["people"]) <= 3000
    assert set(sizes.values()) <= set(range(1, 7))
    assert {1, 2, 3, 4, 5} <= set(sizes.values())
    assert {"head", "partner", "child"} <= {p["role"] for p in truth["people"]}


def test_everyones_identifiers_are_valid_and_their_own(town: tuple[Path, Any]) -> None:
    _, truth = town
    for kind in ("nhs_number", "upn", "ni_number"):
        values = [p[kind] for p in truth["people"] if p.get(kind)]
        assert len(values) > 100
        assert len(set(values)) == len(values), f"two people share a {kind}"
        for value in values:
            assert canonical(kind, value) == value


def test_each_agency_has_its_own_tables_and_no_ground_truth(town: tuple[Path, Any]) -> None:
    directory, truth = town
    schemas = {}
    for agency in AGENCY_NAMES:
        tables = _rows(
            directory / f"{agency}.db",
            "SELECT name, sql FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'",
        )
        schemas[agency] = {name for name, _ in tables}
        text = " ".join(sql for _, sql in tables)
        assert "person_id" not in text.replace("PERSON_ID", "")
        assert "household_id" not in text
        indexes = _rows(
            directory / f"{agency}.db", "SELECT name FROM sqlite_master WHERE type='index'"
        )
        assert len(indexes) >= 3, agency
        assert truth["agencies"][agency]
    names = list(schemas.values())
    assert all(a.isdisjoint(b) for i, a in enumerate(names) for b in names[i + 1 :])
    assert (
        _rows(
            directory / "police.db", "SELECT DOB_TXT FROM PERSON WHERE DOB_TXT IS NOT NULL LIMIT 1"
        )[0][0][2]
        == "/"
    )


def test_records_carry_realistic_errors(town: tuple[Path, Any]) -> None:
    directory, truth = town
    people = {p["person_id"]: p for p in truth["people"]}
    rows = _rows(
        directory / "health.db",
        "SELECT patient_id, given_name, family_name, date_of_birth, postcode, nhs_no FROM patient",
    )
    held = truth["agencies"]["health"]
    differs = {"given": 0, "family": 0, "swap": 0, "postcode": 0, "no_nhs": 0, "no_dob": 0}
    for key, given, family, dob, postcode, nhs in rows:
        true = people[held[str(key)]]
        differs["given"] += given != true["given_name"]
        differs["family"] += family != true["family_name"]
        if dob is None:
            differs["no_dob"] += 1
        elif dob != true["date_of_birth"] and dob[5:7] == true["date_of_birth"][8:10]:
            differs["swap"] += 1
        differs["postcode"] += postcode != true["postcode"]
        differs["no_nhs"] += nhs is None
    assert all(count > 0 for count in differs.values()), differs
    assert differs["given"] < len(rows) * 0.15


def test_the_cli_writes_the_town_and_reports_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["synth", "--people", "120", "--out", str(tmp_path), "--reference-date", TODAY.isoformat()],
    )
    assert result.exit_code == 0, result.output
    assert "people in" in result.output
    for agency in AGENCY_NAMES:
        assert (tmp_path / f"{agency}.db").is_file()
    assert json.loads((tmp_path / "truth.json").read_text())["reference_date"] == TODAY.isoformat()
    assert (tmp_path / "truth.csv").read_text().startswith("person_id,household_id,role,")


def test_the_cli_reports_a_bad_output_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = CliRunner().invoke(app, ["synth", "--people", "10", "--out", str(blocker / "town")])
    assert result.exit_code == 2
    assert result.stderr == f"error: cannot create {blocker / 'town'}: Not a directory\n"
    assert result.stdout == ""


def test_an_output_that_is_a_file_is_named_as_one_and_left_alone(tmp_path: Path) -> None:
    taken = tmp_path / "notes.txt"
    taken.write_text("keep me\n")
    result = CliRunner().invoke(app, ["synth", "--people", "10", "--out", str(taken)])
    assert result.exit_code == 2
    assert result.stderr == f"error: --out {taken} is a file, not a folder\n"
    assert taken.read_text() == "keep me\n"


@pytest.mark.parametrize("date", ["0001-01-01", "1969-12-31"])
def test_a_reference_date_too_early_for_its_people_is_one_line(tmp_path: Path, date: str) -> None:
    out = tmp_path / "town"
    result = CliRunner().invoke(
        app, ["synth", "--people", "10", "--out", str(out), "--reference-date", date]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: --reference-date '{date}' is too early: its oldest people would be born"
        " before 1880; give 1970-01-01 or later\n"
    )
    assert not out.exists()


def test_a_town_needs_people(tmp_path: Path) -> None:
    with pytest.raises(SynthError, match="at least one person"):
        synthesise(0, tmp_path, reference_date=TODAY)


@pytest.mark.slow
def test_twenty_thousand_people_generate_well_under_a_minute(tmp_path: Path) -> None:
    started = time.perf_counter()
    result = synthesise(20_000, tmp_path, seed=2, reference_date=TODAY)
    elapsed = time.perf_counter() - started
    assert result.people == 20_000
    assert elapsed < 45, f"{elapsed:.1f} s"
