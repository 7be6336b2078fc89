"""Seeding the registry from YAML, through the service and through the command line."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from audit.search import SearchQuery
from broker.cli import app as cli
from broker.errors import InvalidChange
from broker.foundation import open_audit_log
from broker.identity import Principal, Role
from broker.registry import load_registry_file, read_registry_file
from broker.settings import BrokerSettings
from connectors.protocol.keys import KeyPair, public_key_to_b64
from tests.broker.foundation_kit import FakeConnector, IssuerServer, running_broker

pytestmark = pytest.mark.anyio

FIELDS = ["police.missing_episodes_12m"]
SEEDER = Principal(subject="cli:ops", name="ops", role=Role.ADMIN, agency="broker")


def registry_yaml(connectors: dict[str, FakeConnector], fields: list[str]) -> dict[str, object]:
    return {
        "agencies": [
            {"id": "council", "name": "Riverside Borough Council", "type": "local_authority"},
            *(
                {
                    "id": agency,
                    "name": f"Riverside {agency.title()}",
                    "type": agency,
                    "connector": {
                        "base_url": f"http://{agency}.test",
                        "public_key": connector.public_key,
                    },
                }
                for agency, connector in connectors.items()
            ),
        ],
        "agreements": [
            {
                "id": "dsa-council-police",
                "parties": ["council", "police"],
                "purposes": ["early_help_assessment"],
                "legal_bases": ["consent"],
                "fields": fields,
                "valid_from": "2026-01-01T00:00:00Z",
                "status": "active",
            }
        ],
    }


async def test_seeding_registers_everything_once_and_then_only_changes(
    tmp_path: Path, dev_issuer: IssuerServer, database_url: str
):
    connectors = {"police": FakeConnector("police"), "school": FakeConnector("school")}
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(registry_yaml(connectors, ["police.missing_episodes_12m"])))
    async with running_broker(
        tmp_path, dev_issuer, database_url=database_url, connectors=connectors
    ) as broker:
        registry = broker.app.state.registry
        first = await load_registry_file(registry, SEEDER, path)
        again = await load_registry_file(registry, SEEDER, path)
        widened = ["police.missing_episodes_12m", "police.domestic_abuse_incidents_12m"]
        path.write_text(yaml.safe_dump(registry_yaml(connectors, widened)))
        changed = await load_registry_file(registry, SEEDER, path)
        matching = registry.connectors_for_matching()
        versions = registry.agreement_versions("dsa-council-police")
        entries = broker.entries("registry_change")
    # 3 agencies + 2 connectors + 1 agreement.
    assert (first.agencies, first.connectors, first.agreements, first.changes) == (3, 2, 1, 6)
    assert again.changes == 0
    assert changed.changes == 1
    assert [c.agency_id for c in matching] == ["police", "school"]
    assert [v.version for v in versions] == [1, 2]
    assert len(entries) == 7
    assert {e.fields["actor"] for e in entries} == {"cli:ops"}


async def test_a_seed_moving_an_agency_to_a_new_connector_and_type_registers_both(
    tmp_path: Path, dev_issuer: IssuerServer
):
    police, moved = FakeConnector("police"), FakeConnector("police")
    moved.announced_type = "youth_justice"
    connectors = {"police": police, "police2": moved}
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(registry_yaml({"police": police}, FIELDS)))
    async with running_broker(tmp_path, dev_issuer, connectors=connectors) as broker:
        registry = broker.app.state.registry
        await load_registry_file(registry, SEEDER, path)
        police.up = False
        seed = registry_yaml({"police": police}, FIELDS)
        agencies: list[dict[str, Any]] = seed["agencies"]  # type: ignore[assignment]
        agencies[1].update(
            type="youth_justice",
            connector={"base_url": "http://police2.test", "public_key": moved.public_key},
        )
        path.write_text(yaml.safe_dump(seed))
        report = await load_registry_file(registry, SEEDER, path)
        [record] = registry.connectors_for_matching()
    # The type and the connector announcing it.
    assert report.changes == 2
    assert (record.agency_type, record.base_url) == ("youth_justice", "http://police2.test")


async def test_a_seed_renaming_an_agency_listed_with_its_connector_renames_it(
    tmp_path: Path, dev_issuer: IssuerServer
):
    police = FakeConnector("police")
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(registry_yaml({"police": police}, FIELDS)))
    async with running_broker(tmp_path, dev_issuer, connectors={"police": police}) as broker:
        registry = broker.app.state.registry
        await load_registry_file(registry, SEEDER, path)
        seed = registry_yaml({"police": police}, FIELDS)
        agencies: list[dict[str, Any]] = seed["agencies"]  # type: ignore[assignment]
        agencies[1].update(name="Riverside Constabulary")
        path.write_text(yaml.safe_dump(seed))
        report = await load_registry_file(registry, SEEDER, path)
        agency = registry.get_agency("police")
    assert report.changes == 1
    assert agency.name == "Riverside Constabulary"
    assert agency.connector is not None
    assert agency.connector.base_url == "http://police.test"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("agencies: [\n", "not valid YAML"),
        ("agencies:\n  - id: Council!\n    name: x\n    type: la\n", "agencies.0.id"),
        ("agreements:\n  - id: a\n", "agreements.0.parties"),
        ("surprise: 1\n", "surprise"),
    ],
)
def test_a_bad_registry_file_names_what_is_wrong(tmp_path: Path, text: str, words: str):
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    with pytest.raises(InvalidChange) as caught:
        read_registry_file(path)
    assert words in caught.value.detail


def test_the_seed_command_registers_and_audits(tmp_path: Path, anyio_backend: str):
    path = tmp_path / "registry.yaml"
    seed = registry_yaml({}, ["police.missing_episodes_12m"])
    seed["agencies"] = [
        *seed["agencies"],  # type: ignore[misc]
        {"id": "police", "name": "Riverside Police", "type": "police"},
    ]
    path.write_text(yaml.safe_dump(seed))
    env = {"JUNCTION_DATA_DIR": str(tmp_path / "var")}
    result = CliRunner().invoke(cli, ["broker", "seed", "--file", str(path)], env=env)
    assert result.exit_code == 0, result.output
    assert "2 agencies, 0 connectors, 1 agreements" in result.stdout
    assert "3 changes recorded" in result.stdout
    again = CliRunner().invoke(cli, ["broker", "seed", "--file", str(path)], env=env)
    assert "0 changes recorded" in again.stdout
    log = open_audit_log(BrokerSettings(data_dir=tmp_path / "var"))
    try:
        page = log.search(SearchQuery(kind="registry_change"))
        # Seeding puts no policy in force: no run leaves a policy_change entry.
        policy = log.search(SearchQuery(kind="policy_change"))
    finally:
        log.close()
    assert len(page.entries) == 3
    assert policy.entries == []
    missing = CliRunner().invoke(
        cli, ["broker", "seed", "--file", str(tmp_path / "nope.yaml")], env=env
    )
    assert missing.exit_code == 2
    assert missing.stderr.startswith("error: cannot read")


def test_a_seeded_date_out_of_range_is_one_line(tmp_path: Path):
    path = tmp_path / "registry.yaml"
    seed = registry_yaml({}, ["police.missing_episodes_12m"])
    seed["agreements"][0]["valid_from"] = "0001-01-01T00:00:00+14:00"  # type: ignore[index]
    path.write_text(yaml.safe_dump(seed))
    env = {"JUNCTION_DATA_DIR": str(tmp_path / "var")}
    result = CliRunner().invoke(cli, ["broker", "seed", "--file", str(path)], env=env)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {path}: agreements.0.valid_from: valid_from must fall between 1678-01-01 "
        "and 2261-12-31 in UTC; an agreement without an end has no valid_to\n"
    )


def test_a_seed_file_that_is_not_utf8_is_one_line(tmp_path: Path):
    path = tmp_path / "registry.yaml"
    path.write_bytes(b"agencies: []\n# caf\xe9\n")
    env = {"JUNCTION_DATA_DIR": str(tmp_path / "var")}
    result = CliRunner().invoke(cli, ["broker", "seed", "--file", str(path)], env=env)
    assert result.exit_code == 2
    assert result.stderr == f"error: {path} is not UTF-8 text (byte 0xe9 at offset 18)\n"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("agencies: [\n", "line 2, column 1: expected the node content, but found '<stream end>'"),
        (
            "agencies:\n  - id: a\n   name: x\n",
            "line 3, column 4: expected <block end>, but found '<block mapping start>'",
        ),
    ],
)
def test_a_seed_file_that_is_not_yaml_is_one_line_naming_the_place(
    tmp_path: Path, text: str, says: str
):
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    env = {"JUNCTION_DATA_DIR": str(tmp_path / "var")}
    result = CliRunner().invoke(cli, ["broker", "seed", "--file", str(path)], env=env)
    assert result.exit_code == 2
    assert result.stderr == f"error: {path} is not valid YAML at {says}\n"


@pytest.mark.parametrize("depth", [200, 5000])
def test_a_seed_file_nested_too_deeply_is_one_line(tmp_path: Path, depth: int):
    path = tmp_path / "registry.yaml"
    path.write_text("agencies: " + "[" * depth + "]" * depth + "\n")
    env = {"JUNCTION_DATA_DIR": str(tmp_path / "var")}
    result = CliRunner().invoke(cli, ["broker", "seed", "--file", str(path)], env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {path}")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "var").exists()


def test_an_agency_or_agreement_listed_twice_is_refused_naming_it(tmp_path: Path):
    path = tmp_path / "registry.yaml"
    seed = registry_yaml({}, ["police.missing_episodes_12m"])
    seed["agencies"] = [
        *seed["agencies"],  # type: ignore[misc]
        {"id": "police", "name": "Riverside Police", "type": "police"},
        {"id": "police", "name": "Riverside Constabulary", "type": "police"},
    ]
    path.write_text(yaml.safe_dump(seed))
    env = {"JUNCTION_DATA_DIR": str(tmp_path / "var")}
    result = CliRunner().invoke(cli, ["broker", "seed", "--file", str(path)], env=env)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {path}: agency 'police' is listed more than once; list each once\n"
    )
    seed["agencies"] = seed["agencies"][:-1]  # type: ignore[index]
    seed["agreements"] = [*seed["agreements"], *seed["agreements"]]  # type: ignore[misc]
    path.write_text(yaml.safe_dump(seed))
    with pytest.raises(InvalidChange) as caught:
        read_registry_file(path)
    assert "agreement 'dsa-council-police' is listed more than once" in caught.value.detail


def _registered(data_dir: Path) -> tuple[list[str], int]:
    """The agencies in the registry and the registry changes in the audit log."""
    with contextlib.closing(sqlite3.connect(data_dir / "broker.db")) as db:
        agencies = [row[0] for row in db.execute("SELECT id FROM broker_agencies ORDER BY id")]
    log = open_audit_log(BrokerSettings(data_dir=data_dir))
    try:
        changes = len(log.search(SearchQuery(kind="registry_change")).entries)
    finally:
        log.close()
    return agencies, changes


def test_a_connector_that_does_not_answer_stops_the_seed_before_any_change(tmp_path: Path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{probe.getsockname()[1]}"
    path = tmp_path / "registry.yaml"
    seed = registry_yaml({}, FIELDS)
    seed["agencies"] = [
        *seed["agencies"],  # type: ignore[misc]
        {
            "id": "police",
            "name": "Riverside Police",
            "type": "police",
            "connector": {
                "base_url": nowhere,
                "public_key": public_key_to_b64(KeyPair.generate().public_key),
            },
        },
    ]
    path.write_text(yaml.safe_dump(seed))
    env = {"JUNCTION_DATA_DIR": str(tmp_path / "var")}
    result = CliRunner().invoke(cli, ["broker", "seed", "--file", str(path)], env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: cannot reach {nowhere}/v1/manifest")
    assert _registered(tmp_path / "var") == ([], 0)


def test_a_seed_stopped_by_a_change_says_how_many_it_recorded_before(tmp_path: Path):
    path = tmp_path / "registry.yaml"
    seed = registry_yaml({}, FIELDS)
    seed["agencies"] = [
        *seed["agencies"],  # type: ignore[misc]
        {"id": "police", "name": "Riverside Police", "type": "police"},
    ]
    seed["agreements"][0]["purposes"] = ["fishing_expedition"]  # type: ignore[index]
    path.write_text(yaml.safe_dump(seed))
    env = {"JUNCTION_DATA_DIR": str(tmp_path / "var")}
    result = CliRunner().invoke(cli, ["broker", "seed", "--file", str(path)], env=env)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: purpose 'fishing_expedition'")
    assert lines[0].endswith(
        f"; 2 changes were recorded from {path} before it, and kept: correct the file and"
        " seed it again"
    )
    assert _registered(tmp_path / "var") == (["council", "police"], 2)
