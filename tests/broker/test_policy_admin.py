"""Reloading policy without a restart: audited, and a bad bundle never replaces a good one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from broker.identity import Role
from policies.settings import DEFAULT_BUNDLE_DIR
from tests.broker.foundation_kit import IssuerServer, running_broker

pytestmark = pytest.mark.anyio


@pytest.fixture
def bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped bundle the broker is configured to load."""
    copy = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE_DIR / "rego", copy / "rego")
    shutil.copytree(DEFAULT_BUNDLE_DIR / "data", copy / "data")
    monkeypatch.setenv("JUNCTION_POLICY_BUNDLE_DIRS", json.dumps([str(copy)]))
    return copy


async def test_a_reload_takes_effect_and_is_audited(
    tmp_path: Path, dev_issuer: IssuerServer, bundle: Path
) -> None:
    async with running_broker(tmp_path, dev_issuer) as broker:
        before = (await broker.client.get("/v1/policy", headers=broker.as_(Role.ADMIN))).json()
        purposes = bundle / "data" / "catalogue" / "purposes.json"
        data = json.loads(purposes.read_text())
        data["early_help_assessment"]["retention_days"] = 365
        purposes.write_text(json.dumps(data))
        response = await broker.client.post(
            "/v1/policy/reload",
            json={"reason": "Retention shortened"},
            headers=broker.as_(Role.ADMIN),
        )
        assert response.status_code == 200, response.text
        after = response.json()
        assert after["digest"] != before["digest"]
        changes = broker.entries("policy_change")
        assert [e.fields["policy_digest"] for e in changes][-2:] == [
            before["digest"],
            after["digest"],
        ]
        assert changes[-1].fields["request_digest"] == before["digest"]


async def test_a_bundle_that_fails_its_tests_is_refused(
    tmp_path: Path, dev_issuer: IssuerServer, bundle: Path
) -> None:
    async with running_broker(tmp_path, dev_issuer) as broker:
        before = (await broker.client.get("/v1/policy", headers=broker.as_(Role.ADMIN))).json()
        family = bundle / "rego" / "family.rego"
        family.write_text(family.read_text().replace("deny by default", "oops") + "\nbroken {")
        response = await broker.client.post(
            "/v1/policy/reload", json={"reason": "Broken edit"}, headers=broker.as_(Role.ADMIN)
        )
        assert response.status_code == 422
        assert response.json()["type"] == "urn:junction:problem:policy-reload-refused"
        state = (await broker.client.get("/v1/policy", headers=broker.as_(Role.ADMIN))).json()
        assert state["digest"] == before["digest"]
        assert len(broker.entries("policy_change")) == 1


@pytest.mark.parametrize("role", [Role.CASEWORKER, Role.IG_OFFICER, Role.CONNECTOR])
async def test_only_an_administrator_may_reload(
    tmp_path: Path, dev_issuer: IssuerServer, role: Role
) -> None:
    async with running_broker(tmp_path, dev_issuer) as broker:
        response = await broker.client.post(
            "/v1/policy/reload", json={"reason": "Trying"}, headers=broker.as_(role)
        )
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("application/problem+json")
