"""Reloading policy without a restart: audited, and a bad bundle never replaces a good one."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from audit.errors import StoreError
from broker.identity import Role
from broker.policy_admin.runner import PolicyThread
from policies._regorus import RegorusEngine
from policies.opa_standin import OpaStandin
from policies.service import PolicyService
from policies.settings import DEFAULT_BUNDLE_DIR
from tests.broker.foundation_kit import IssuerServer, running_broker
from tests.policies.factories import family_query

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
        # Who: the admin and their agency, as for a registry change; why: the reason.
        assert changes[-1].fields["actor"] == "dev:council:sam.okafor"
        assert changes[-1].fields["actor_agency"] == "council"
        assert changes[-1].fields["reasons"] == ["Retention shortened", "engine:regorus"]


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
        assert "rego/family.rego:" in response.json()["detail"]
        extra = await broker.client.post(
            "/v1/policy/reload",
            json={"reason": "Broken edit", "force": True},
            headers=broker.as_(Role.ADMIN),
        )
        assert extra.status_code == 422
        assert extra.json()["type"] == "urn:junction:problem:invalid-request"
        state = (await broker.client.get("/v1/policy", headers=broker.as_(Role.ADMIN))).json()
        assert state["digest"] == before["digest"]
        assert len(broker.entries("policy_change")) == 1


async def test_a_bundle_whose_data_nests_too_deeply_is_refused(
    tmp_path: Path, dev_issuer: IssuerServer, bundle: Path
) -> None:
    async with running_broker(tmp_path, dev_issuer) as broker:
        before = (await broker.client.get("/v1/policy", headers=broker.as_(Role.ADMIN))).json()
        (bundle / "data" / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
        response = await broker.client.post(
            "/v1/policy/reload", json={"reason": "Deep data"}, headers=broker.as_(Role.ADMIN)
        )
        state = (await broker.client.get("/v1/policy", headers=broker.as_(Role.ADMIN))).json()
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "urn:junction:problem:policy-reload-refused"
    assert "deep.json nests arrays or objects too deeply" in response.json()["detail"]
    assert state == before


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("   ", "String should have at least 3 characters"),
        ("\n\n\n", "String should have at least 3 characters"),
        (
            "ok\u001b[31m red",
            "remove the control character U+001B: the text may hold none",
        ),
        ("two\nlines", "remove the control character U+000A: the text may hold none"),
    ],
)
async def test_a_reload_whose_reason_says_nothing_is_refused(
    tmp_path: Path, dev_issuer: IssuerServer, reason: str, message: str
) -> None:
    async with running_broker(tmp_path, dev_issuer) as broker:
        response = await broker.client.post(
            "/v1/policy/reload", json={"reason": reason}, headers=broker.as_(Role.ADMIN)
        )
        padded = await broker.client.post(
            "/v1/policy/reload",
            json={"reason": "  Retention shortened \t"},
            headers=broker.as_(Role.ADMIN),
        )
        changes = broker.entries("policy_change")
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "urn:junction:problem:invalid-request"
    assert [e["message"] for e in response.json()["errors"]] == [message]
    assert padded.status_code == 200, padded.text
    assert [e.fields["reasons"][0] for e in changes] == ["start-up", "Retention shortened"]


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


async def test_a_query_running_across_a_reload_decides_with_one_bundle(bundle: Path) -> None:
    thread = PolicyThread(lambda: PolicyService([bundle], RegorusEngine, lambda *_: None))
    reasons = bundle / "data" / "catalogue" / "reason_codes.json"
    try:
        async with thread.pinned() as policy:
            first = await policy.decide(family_query(case_reference=""))
            reasons.write_text(
                reasons.read_text().replace(
                    "This purpose needs a case reference.", "Add the case reference."
                )
            )
            await asyncio.to_thread(thread.reload, actor="admin", reason="new wording")
            # The reload is in force, but this query's second decision is still the
            # bundle its first came from: its answer and audit entries name one digest.
            second = await policy.decide(family_query(case_reference=""))
        async with thread.pinned() as policy:
            later = await policy.decide(family_query(case_reference=""))
    finally:
        thread.close()
    assert second.bundle_digest == first.bundle_digest != later.bundle_digest
    assert later.bundle_digest == thread.digest
    assert [r.text for r in second.submit.reasons] == ["This purpose needs a case reference."]
    assert [r.text for r in later.submit.reasons] == ["Add the case reference."]


async def test_a_reload_while_the_opa_server_is_down_is_503_and_keeps_the_bundle(
    tmp_path: Path, dev_issuer: IssuerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = OpaStandin().__enter__()
    monkeypatch.setenv("JUNCTION_POLICY_ENGINE", "opa")
    monkeypatch.setenv("JUNCTION_POLICY_OPA_URL", server.url)
    async with running_broker(tmp_path, dev_issuer) as broker:
        before = (await broker.client.get("/v1/policy", headers=broker.as_(Role.ADMIN))).json()
        server.__exit__(None, None, None)
        response = await broker.client.post(
            "/v1/policy/reload", json={"reason": "New wording"}, headers=broker.as_(Role.ADMIN)
        )
        assert response.status_code == 503, response.text
        problem = response.json()
        assert problem["type"] == "urn:junction:problem:policy-engine-unavailable"
        assert f"the OPA server at {server.url} cannot be reached" in problem["detail"]
        assert "the bundle in force is unchanged" in problem["detail"]
        assert "HTTPConnectionPool" not in problem["detail"]
        state = (await broker.client.get("/v1/policy", headers=broker.as_(Role.ADMIN))).json()
        assert state == before
        assert len(broker.entries("policy_change")) == 1


async def test_a_reload_the_audit_log_cannot_record_is_503_and_keeps_the_bundle(
    tmp_path: Path, dev_issuer: IssuerServer, bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_broker(tmp_path, dev_issuer) as broker:
        before = (await broker.client.get("/v1/policy", headers=broker.as_(Role.ADMIN))).json()
        reasons = bundle / "data" / "catalogue" / "reason_codes.json"
        reasons.write_text(reasons.read_text().replace("case reference.", "case ref."))
        appended = broker.audit.append

        def full(entry: object) -> int:
            raise StoreError("disk full")

        monkeypatch.setattr(broker.audit, "append", full)
        response = await broker.client.post(
            "/v1/policy/reload", json={"reason": "New wording"}, headers=broker.as_(Role.ADMIN)
        )
        monkeypatch.setattr(broker.audit, "append", appended)
        assert response.status_code == 503, response.text
        assert response.json()["type"] == "urn:junction:problem:store-unavailable"
        assert "could not record this policy change" in response.json()["detail"]
        state = (await broker.client.get("/v1/policy", headers=broker.as_(Role.ADMIN))).json()
        assert state == before
