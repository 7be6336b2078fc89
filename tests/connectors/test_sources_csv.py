"""The CSV source answers exactly as the SQL source does over the same records."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import SourceError, UnknownField
from connectors.mapping import CsvSourceSpec
from connectors.protocol.messages import Subject
from connectors.sources import CsvSource, SqlSource
from tests.connectors.source_kit import agency_mapping, clock, export_csv, write_town

AGENCIES = ("education", "police", "housing", "health", "social_care", "benefits")


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("town")
    truth = write_town(out, 250, seed=9)
    for agency in AGENCIES:
        export_csv(out / f"{agency}.db", out / f"{agency}_csv")
    return out, truth


def _pair(town: Path, agency: str) -> tuple[SqlSource, CsvSource]:
    sql_mapping = agency_mapping(agency, town)
    spec = CsvSourceSpec(kind="csv", directory=town / f"{agency}_csv")
    csv_source = CsvSource(sql_mapping.model_copy(update={"source": spec}), clock=clock)
    return SqlSource(sql_mapping, clock=clock), csv_source


@pytest.mark.parametrize("agency", AGENCIES)
def test_csv_and_sql_agree_on_blocking_households_facts_and_flags(
    town: tuple[Path, Any], agency: str
) -> None:
    directory, truth = town
    sql, csv_source = _pair(directory, agency)
    csv_source.check()
    people = {p["person_id"]: p for p in truth["people"]}
    keys = sorted(truth["agencies"][agency])[:6]
    try:
        for key in keys:
            person = people[truth["agencies"][agency][key]]
            subject = Subject(
                given_name=person["given_name"],
                family_name=person["family_name"],
                date_of_birth=dt.date.fromisoformat(person["date_of_birth"]),
                postcode=person["postcode"],
            )
            assert sorted(r.key for r in csv_source.block(subject, 500)) == sorted(
                r.key for r in sql.block(subject, 500)
            )
            assert sorted(csv_source.household(key), key=lambda m: m[0].key) == sorted(
                sql.household(key), key=lambda m: m[0].key
            )
        fields = sorted(sql.mapping.fields)
        assert csv_source.fetch(keys, fields) == sql.fetch(keys, fields)
        assert csv_source.flags(keys) == sql.flags(keys)
    finally:
        sql.close()


def test_csv_fetch_gives_only_what_was_asked(town: tuple[Path, Any]) -> None:
    directory, truth = town
    _, csv_source = _pair(directory, "police")
    key = sorted(truth["agencies"]["police"])[0]
    answer = csv_source.fetch([key, "' OR 1=1 --"], ["police.callouts_12m"])
    assert list(answer) == [key]
    assert list(answer[key]) == ["police.callouts_12m"]
    with pytest.raises(UnknownField):
        csv_source.fetch([key], ["police.everything"])


def test_a_vanished_csv_file_is_a_source_error(town: tuple[Path, Any], tmp_path: Path) -> None:
    directory, truth = town
    export_csv(directory / "police.db", tmp_path)
    mapping = agency_mapping("police", directory)
    source = CsvSource(
        mapping.model_copy(update={"source": CsvSourceSpec(kind="csv", directory=tmp_path)})
    )
    source.check()
    (tmp_path / "INCIDENT.csv").unlink()
    key = sorted(truth["agencies"]["police"])[0]
    with pytest.raises(SourceError, match=r"INCIDENT\.csv"):
        source.fetch([key], ["police.callouts_12m"])
