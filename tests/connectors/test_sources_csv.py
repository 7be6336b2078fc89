"""The CSV source answers exactly as the SQL source does over the same records."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import MappingError, SourceError, UnknownField
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


def _police_csv(town: Path, directory: Path) -> CsvSource:
    export_csv(town / "police.db", directory)
    mapping = agency_mapping("police", town)
    spec = CsvSourceSpec(kind="csv", directory=directory)
    return CsvSource(mapping.model_copy(update={"source": spec}), clock=clock)


def _edit_people(directory: Path, edit: Any) -> Path:
    people = directory / "PERSON.csv"
    lines = people.read_text(encoding="utf-8").splitlines()
    people.write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")
    return people


def test_a_csv_export_with_a_byte_order_mark_reads_as_without(
    town: tuple[Path, Any], tmp_path: Path
) -> None:
    # Spreadsheet programs write one before the header when saving "CSV UTF-8".
    directory, truth = town
    source = _police_csv(directory, tmp_path)
    keys = sorted(truth["agencies"]["police"])[:3]
    fields = sorted(source.mapping.fields)
    before = source.fetch(keys, fields)
    for table in ("PERSON", "INCIDENT"):
        path = tmp_path / f"{table}.csv"
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    source.check()
    assert source.fetch(keys, fields) == before


def test_a_person_key_on_two_rows_fails_check_and_is_never_answered(
    town: tuple[Path, Any], tmp_path: Path
) -> None:
    # With one key for two rows, a match on one person could be answered with the other's facts.
    directory, truth = town
    source = _police_csv(directory, tmp_path)
    key = sorted(truth["agencies"]["police"])[0]
    people = _edit_people(
        tmp_path, lambda lines: [*lines, next(row for row in lines if row.startswith(key + ","))]
    )
    lines = people.read_text(encoding="utf-8").splitlines()
    first = next(n for n, row in enumerate(lines, 1) if row.startswith(key + ","))
    with pytest.raises(MappingError) as caught:
        source.check()
    assert caught.value.detail == (
        f"person.key: lines {first} and {len(lines)} of PERSON.csv hold the same PERSON_ID "
        f"{key!r}; each person needs a key of their own"
    )
    for read in (source.flags, lambda keys: source.fetch(keys, ["police.callouts_12m"])):
        with pytest.raises(SourceError) as refused:
            read([key])
        assert refused.value.detail == (
            "PERSON.csv holds one PERSON_ID on more than one row; "
            "junction connector check names them"
        )
        assert key not in refused.value.detail


def test_a_column_the_mapping_reads_named_twice_in_the_header_is_refused(
    town: tuple[Path, Any], tmp_path: Path
) -> None:
    # The second LAST_NM column would silently answer for the first.
    directory, truth = town
    source = _police_csv(directory, tmp_path)
    key = sorted(truth["agencies"]["police"])[0]
    _edit_people(
        tmp_path,
        lambda lines: [lines[0] + ",LAST_NM,NOTES,NOTES", *(row + ",X,a,b" for row in lines[1:])],
    )
    with pytest.raises(MappingError) as caught:
        source.check()
    assert caught.value.detail == (
        "person.key: the header of PERSON.csv names LAST_NM twice (columns 3 and 9); "
        "rename or remove one"
    )
    with pytest.raises(SourceError) as refused:
        source.fetch([key], ["police.callouts_12m"])
    assert refused.value.detail == (
        "the header of PERSON.csv names LAST_NM twice (columns 3 and 9); rename or remove one"
    )


def test_a_column_the_mapping_does_not_read_may_be_named_twice(
    town: tuple[Path, Any], tmp_path: Path
) -> None:
    directory, truth = town
    source = _police_csv(directory, tmp_path)
    key = sorted(truth["agencies"]["police"])[0]
    before = source.fetch([key], ["police.callouts_12m"])
    _edit_people(
        tmp_path, lambda lines: [lines[0] + ",NOTES,NOTES", *(row + ",a,b" for row in lines[1:])]
    )
    source.check()
    assert source.fetch([key], ["police.callouts_12m"]) == before


def test_a_ragged_row_under_a_header_with_a_repeated_name_counts_every_column(
    town: tuple[Path, Any], tmp_path: Path
) -> None:
    directory, _ = town
    source = _police_csv(directory, tmp_path)
    _edit_people(
        tmp_path,
        lambda lines: [
            lines[0] + ",NOTES,NOTES",
            *(row + ",a,b" for row in lines[1:3]),
            "PN9999999,JOHN",
            *(row + ",a,b" for row in lines[3:]),
        ],
    )
    with pytest.raises(MappingError) as caught:
        source.check()
    assert (
        caught.value.detail == "person.key: line 4 of PERSON.csv has 2 values; its header names 10"
    )


def test_a_row_with_too_few_values_is_named_by_its_line(
    town: tuple[Path, Any], tmp_path: Path
) -> None:
    # Its missing columns would read as empty: a protective flag among them as not set.
    directory, truth = town
    source = _police_csv(directory, tmp_path)
    key = sorted(truth["agencies"]["police"])[0]
    _edit_people(tmp_path, lambda lines: [*lines[:3], "PN9999999,JOHN", *lines[3:]])
    with pytest.raises(MappingError) as caught:
        source.check()
    assert (
        caught.value.detail == "person.key: line 4 of PERSON.csv has 2 values; its header names 8"
    )
    with pytest.raises(SourceError) as refused:
        source.fetch([key], ["police.callouts_12m"])
    assert refused.value.detail == "line 4 of PERSON.csv has 2 values; its header names 8"
