"""Mapping files: the shipped six load, and every mistake gets a one-line error naming it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.errors import MappingError
from connectors.mapping import load_mapping, parse_mapping
from connectors.protocol.messages import Sensitivity
from connectors.sources import CsvSource, SqlSource
from connectors.synth import AGENCY_NAMES
from tests.connectors.source_kit import AGENCY_FILES, agency_mapping, export_csv, write_town


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("town")
    write_town(out, 150)
    return out


def _raw(agency: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((AGENCY_FILES / f"{agency}.yaml").read_text())
    return loaded


def _check(raw: dict[str, Any], town: Path) -> None:
    text = yaml.safe_dump(raw)
    mapping = parse_mapping(text, environ={"JUNCTION_TOWN_DIR": str(town)})
    source = SqlSource(mapping)
    try:
        source.check()
    finally:
        source.close()


def test_the_six_agencies_offer_namespaced_fields_with_sensitivity(town: Path) -> None:
    offered: set[str] = set()
    for agency in AGENCY_NAMES:
        mapping = agency_mapping(agency, town)
        offers = mapping.offers()
        assert len(offers) >= 4
        assert all(o.name.startswith(f"{agency}.") for o in offers)
        offered |= {o.name for o in offers}
    assert "police.domestic_abuse_incidents_12m" in offered
    assert "housing.rent_arrears_gbp" in offered
    police = {o.name: o for o in agency_mapping("police", town).offers()}
    assert police["police.domestic_abuse_incidents_12m"].sensitivity is Sensitivity.CRIMINAL_OFFENCE


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["person"].update(table="pupil"), "table pupil not found"),
        (
            lambda m: m["person"].update(given_name="first_name"),
            "column pupils.first_name not found",
        ),
        (
            lambda m: m["fields"]["education.suspensions_12m"]["aggregate"].update(
                table="exclusion"
            ),
            "fields.education.suspensions_12m.aggregate.key: table exclusion not found",
        ),
        (
            lambda m: m["person"].update(date_of_birth={"column": "forename"}),
            "person.date_of_birth: column pupils.forename is VARCHAR(60), expected a date",
        ),
        (
            lambda m: m["fields"]["education.suspensions_12m"]["aggregate"]["window"].update(
                column="exclusion_type"
            ),
            "column exclusions.exclusion_type is VARCHAR(5), expected a date",
        ),
        (
            lambda m: m["source"].update(url="sqlite:////nonexistent/dir/education.db"),
            "source.url: cannot reach sqlite database /nonexistent/dir/education.db",
        ),
    ],
)
def test_check_names_what_does_not_fit_the_live_database(
    town: Path, change: Any, message: str
) -> None:
    raw = _raw("education")
    change(raw)
    with pytest.raises(MappingError) as caught:
        _check(raw, town)
    assert message in caught.value.detail
    assert "\n" not in caught.value.detail


def test_an_unreachable_server_is_one_line() -> None:
    raw = _raw("health")
    raw["source"]["url"] = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
    raw["source"]["timeout_ms"] = 1000
    with pytest.raises(MappingError) as caught:
        _check(raw, Path("/unused"))
    assert caught.value.detail.startswith(
        "source.url: cannot reach postgresql database nothing at 127.0.0.1:1"
    )
    assert "\n" not in caught.value.detail


def test_a_wrong_type_on_postgres_is_named(town: Path, postgres_url: str) -> None:
    write_town(town / "pg", 60, server_url=postgres_url)
    raw = _raw("police")
    raw["source"]["url"] = postgres_url
    del raw["person"]["date_of_birth"]["format"]
    with pytest.raises(
        MappingError, match=r"person.date_of_birth: column PERSON.DOB_TXT is VARCHAR"
    ):
        _check(raw, town)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("agency: [unclosed", "not valid YAML at line"),
        ("- a list", "expected a mapping"),
        ("agency: {id: x}", "agency.id: String should match pattern"),
    ],
)
def test_malformed_files_get_one_line(text: str, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        parse_mapping(text, origin="agency.yaml")


def test_a_member_error_names_its_path() -> None:
    raw = _raw("education")
    raw["fields"]["education.attendance_rate"]["aggregate"] = {
        "table": "t",
        "key": "k",
        "function": "count",
    }
    with pytest.raises(MappingError) as caught:
        parse_mapping(yaml.safe_dump(raw), environ={"JUNCTION_TOWN_DIR": "/x"})
    # Without pydantic's "Value error, " before the sentence.
    assert caught.value.detail == (
        "mapping: fields.education.attendance_rate: "
        "a field is computed from exactly one of column or aggregate"
    )
    raw = _raw("education")
    raw["fields"]["Education attendance"] = raw["fields"].pop("education.attendance_rate")
    with pytest.raises(MappingError, match=r"fields\.Education attendance"):
        parse_mapping(yaml.safe_dump(raw), environ={"JUNCTION_TOWN_DIR": "/x"})


def _misspell(raw: dict[str, Any], path: list[str], wrong: str) -> None:
    *parents, right = path
    for part in parents:
        raw = raw[part]
    raw[wrong] = raw.pop(right)


@pytest.mark.parametrize(
    ("path", "wrong", "message"),
    [
        # Required: pydantic would name only the member then missing (given_name).
        (["person", "given_name"], "given_nme", "person.given_nme: not a known member; "),
        (["source"], "sources", "sources: not a known member; did you mean 'source'?"),
        # Optional: nothing is missing, the member would be silently dropped without forbid.
        (["person", "name_case"], "name_cse", "did you mean 'name_case'?"),
        (
            ["fields", "police.callouts_12m", "aggregate", "function"],
            "functon",
            "fields.police.callouts_12m.aggregate.functon: not a known member; "
            "did you mean 'function'?",
        ),
        (["agency", "type"], "kind_of_agency", "agency.kind_of_agency: not a known member\n"),
    ],
)
def test_a_misspelt_member_is_named_with_the_nearest_known_one(
    path: list[str], wrong: str, message: str
) -> None:
    raw = _raw("police")
    _misspell(raw, path, wrong)
    with pytest.raises(MappingError) as caught:
        parse_mapping(
            yaml.safe_dump(raw), origin="police.yaml", environ={"JUNCTION_TOWN_DIR": "/x"}
        )
    assert message.rstrip("\n") in caught.value.detail
    if message.endswith("\n"):
        assert caught.value.detail.endswith(message.rstrip("\n"))
    assert caught.value.detail.startswith("police.yaml: ")


def test_an_unset_environment_variable_is_named(tmp_path: Path) -> None:
    target = tmp_path / "education.yaml"
    shutil.copy(AGENCY_FILES / "education.yaml", target)
    with pytest.raises(MappingError, match="environment variable JUNCTION_TOWN_DIR is not set"):
        load_mapping(target, environ={})
    with pytest.raises(MappingError, match="cannot read the mapping file"):
        load_mapping(tmp_path / "missing.yaml")


def test_csv_check_names_missing_files_and_columns(town: Path, tmp_path: Path) -> None:
    export_csv(town / "education.db", tmp_path / "csv")
    raw = _raw("education")
    raw["source"] = {"kind": "csv", "directory": str(tmp_path / "csv")}
    CsvSource(parse_mapping(yaml.safe_dump(raw))).check()
    (tmp_path / "csv" / "exclusions.csv").unlink()
    with pytest.raises(MappingError, match=r"table exclusions not found in .*csv"):
        CsvSource(parse_mapping(yaml.safe_dump(raw))).check()
    raw["source"]["directory"] = str(tmp_path / "nowhere")
    with pytest.raises(MappingError, match="is not a directory"):
        CsvSource(parse_mapping(yaml.safe_dump(raw))).check()


def _police_text() -> str:
    return (AGENCY_FILES / "police.yaml").read_text()


def test_a_field_given_twice_is_refused_naming_both_lines() -> None:
    # Read as YAML usually is, the second would silently replace the first.
    text = _police_text().replace("  police.callouts_12m:\n", "  police.missing_episodes_12m:\n")
    lines = text.splitlines()
    first, second = [
        n for n, line in enumerate(lines, 1) if line == "  police.missing_episodes_12m:"
    ]
    with pytest.raises(MappingError) as caught:
        parse_mapping(text, origin="police.yaml", environ={"JUNCTION_TOWN_DIR": "/x"})
    assert caught.value.detail == (
        f"police.yaml: not valid YAML at line {second}, column 3: "
        f"'police.missing_episodes_12m' is given twice (first at line {first}); keep one"
    )


def test_a_member_given_twice_is_refused() -> None:
    text = _police_text().replace(
        "  name_case: upper\n", "  name_case: upper\n  name_case: lower\n"
    )
    with pytest.raises(MappingError, match=r"'name_case' is given twice \(first at line \d+\)"):
        parse_mapping(text, origin="police.yaml", environ={"JUNCTION_TOWN_DIR": "/x"})


def test_a_yaml_error_says_where_and_what() -> None:
    with pytest.raises(MappingError) as caught:
        parse_mapping("agency:\n  id: police\n  name: [unclosed\n", origin="police.yaml")
    assert caught.value.detail == (
        "police.yaml: not valid YAML at line 4, column 1: "
        "expected ',' or ']', but got '<stream end>'"
    )
