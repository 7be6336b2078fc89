"""An agency's type comes from the policy catalogue: a misspelt one is refused, not stored."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from audit.checkpoint import NoteSigner
from audit.log import DEFAULT_ORIGIN, AuditLog
from broker.cli import app as cli
from broker.db import Database
from broker.demo.layout import AGENCY_DIR, REQUESTER
from broker.identity import Principal, Role
from broker.registry import RegistryService
from broker.registry.schemas import AgencyIn
from connectors.mapping import load_mapping
from policies.bundle import load_bundle
from policies.settings import DEFAULT_BUNDLE_DIR
from tests.broker.foundation_kit import IssuerServer, running_broker

pytestmark = pytest.mark.anyio

CATALOGUE = load_bundle([DEFAULT_BUNDLE_DIR]).data["catalogue"]
POLCE = "agency type 'polce' is not in the policy catalogue; did you mean 'police'?"


async def test_an_agency_type_not_in_the_catalogue_is_refused_naming_the_nearest(
    tmp_path: Path, dev_issuer: IssuerServer
):
    async with running_broker(tmp_path, dev_issuer) as broker:
        admin = broker.as_(Role.ADMIN)
        police = {"id": "police", "name": "Riverside Police", "type": "police"}
        registered = await broker.client.post("/v1/agencies", json=police, headers=admin)
        created = await broker.client.post(
            "/v1/agencies", json={**police, "id": "police-north", "type": "polce"}, headers=admin
        )
        changed = await broker.client.put(
            "/v1/agencies/police", json={"name": "Riverside Police", "type": "polce"}, headers=admin
        )
        stored = await broker.client.get("/v1/agencies", headers=admin)
        entries = broker.entries("registry_change")
    assert registered.status_code == 201, registered.text
    for refused in (created, changed):
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "urn:junction:problem:invalid-change"
        assert refused.json()["detail"] == POLCE
    assert [(a["id"], a["type"]) for a in stored.json()] == [("police", "police")]
    assert [e.fields["reasons"] for e in entries] == [["agency_registered"]]


def test_seeding_an_agency_type_not_in_the_catalogue_is_refused(tmp_path: Path):
    path = tmp_path / "registry.yaml"
    agencies = [{"id": "police", "name": "Riverside Police", "type": "polce"}]
    path.write_text(yaml.safe_dump({"agencies": agencies}))
    env = {"JUNCTION_DATA_DIR": str(tmp_path / "var")}
    result = CliRunner().invoke(cli, ["broker", "seed", "--file", str(path)], env=env)
    assert result.exit_code == 2
    assert result.stderr == f"error: {POLCE}\n"


def test_a_catalogue_without_agency_types_refuses_none(tmp_path: Path):
    older = {key: value for key, value in CATALOGUE.items() if key != "agency_types"}
    db = Database.open(f"sqlite:///{tmp_path / 'broker.db'}")
    log = AuditLog.open(f"sqlite:///{tmp_path / 'audit.db'}", NoteSigner.generate(DEFAULT_ORIGIN))
    registry = RegistryService(
        db, log, http=httpx.AsyncClient(), broker_name="broker", catalogue=lambda: older
    )
    admin = Principal(subject="u-1", name="Alex", role=Role.ADMIN, agency="council")
    try:
        stored = registry.create_agency(admin, AgencyIn(id="police", name="Police", type="polce"))
    finally:
        log.close()
        db.close()
    assert stored.type == "polce"


def test_every_agency_type_in_use_is_in_the_catalogue_with_a_one_line_description():
    types = CATALOGUE["agency_types"]
    used = {REQUESTER[2]}
    for purpose in CATALOGUE["purposes"].values():
        used.update(purpose["field_allow"], purpose["tiers"])
    town = {"JUNCTION_TOWN_DIR": "/town"}
    for path in sorted(AGENCY_DIR.glob("*.yaml")):
        used.add(load_mapping(path, environ=town).agency.type)
    assert used - set(types) == set()
    titles = [described["title"] for described in types.values()]
    assert all(title.strip() for title in titles)
    assert not [title for title in titles if "\n" in title]
