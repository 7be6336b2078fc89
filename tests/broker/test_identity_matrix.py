"""Every role against every registry, consent and sign-in endpoint: allowed, or a 403."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broker.identity import Role
from tests.broker.foundation_kit import Broker, FakeConnector, IssuerServer, running_broker

pytestmark = pytest.mark.anyio

ADMIN, IG, CASEWORKER = Role.ADMIN, Role.IG_OFFICER, Role.CASEWORKER
AGREEMENT = {
    "parties": ["council", "police"],
    "purposes": ["early_help_assessment"],
    "legal_bases": ["consent"],
    "fields": ["police.missing_episodes_12m"],
    "valid_from": "2026-01-01T00:00:00Z",
    "status": "active",
}
CONSENT = {
    "identifiers": [{"kind": "upn", "value": "B801200005001"}],
    "purpose": "early_help_assessment",
    "scope": "all",
    "channel": "in_person",
}

# (method, path template, body, roles allowed). Written out by hand on purpose: the
# test fails if the code grants a role this table does not, or adds an endpoint to it.
MATRIX: list[tuple[str, str, Any, set[Role]]] = [
    ("GET", "/v1/agencies", None, {ADMIN, IG}),
    ("POST", "/v1/agencies", {"id": "school", "name": "School", "type": "school"}, {ADMIN}),
    ("GET", "/v1/agencies/{agency_id}", None, {ADMIN, IG}),
    ("PUT", "/v1/agencies/{agency_id}", {"name": "Police", "type": "police"}, {ADMIN}),
    ("PUT", "/v1/agencies/{agency_id}/connector", "connector", {ADMIN}),
    ("POST", "/v1/agencies/{agency_id}/connector/refresh", None, {ADMIN}),
    ("GET", "/v1/agreements", None, {ADMIN, IG}),
    ("POST", "/v1/agreements", {**AGREEMENT, "id": "dsa-{n}"}, {ADMIN}),
    ("GET", "/v1/agreements/{agreement_id}", None, {ADMIN, IG}),
    ("GET", "/v1/agreements/{agreement_id}/versions", None, {ADMIN, IG}),
    ("PUT", "/v1/agreements/{agreement_id}", AGREEMENT, {ADMIN}),
    ("POST", "/v1/consents", CONSENT, {CASEWORKER}),
    (
        "POST",
        "/v1/consents/search",
        {"identifiers": CONSENT["identifiers"]},
        {CASEWORKER, IG, ADMIN},
    ),
    ("GET", "/v1/consents/{consent_id}", None, {CASEWORKER, IG, ADMIN}),
    ("POST", "/v1/consents/{consent_id}/transitions", {"state": "withdrawn"}, {CASEWORKER}),
]
OWN_PREFIXES = ("/v1/agencies", "/v1/agreements", "/v1/consents")


async def _try(
    broker: Broker,
    role: Role,
    *,
    method: str,
    template: str,
    body: Any,
    allowed: set[Role],
    n: int,
    connector: dict[str, str],
) -> list[str]:
    recorded = await broker.client.post(
        "/v1/consents", json=CONSENT, headers=broker.as_(CASEWORKER)
    )
    path = template.format(agency_id="police", agreement_id="dsa", consent_id=recorded.json()["id"])
    payload = connector if body == "connector" else body
    if isinstance(payload, dict) and payload.get("id") == "dsa-{n}":
        payload = {**payload, "id": f"dsa-{n}"}
    response = await broker.client.request(method, path, json=payload, headers=broker.as_(role))
    if role in allowed:
        if response.status_code >= 400:
            return [f"{role} {method} {path}: {response.status_code}"]
    elif response.status_code != 403 or response.json()["type"] != (
        "urn:junction:problem:forbidden"
    ):
        return [f"{role} {method} {path}: {response.status_code}, not 403"]
    return []


async def test_every_role_reaches_only_the_endpoints_it_may(
    tmp_path: Path, dev_issuer: IssuerServer
):
    police = FakeConnector("police")
    async with running_broker(tmp_path, dev_issuer, connectors={"police": police}) as broker:
        document = (await broker.client.get("/openapi.json")).json()
        routes = {
            (method.upper(), path)
            for path, operations in document["paths"].items()
            if path.startswith(OWN_PREFIXES)
            for method in operations
        }
        assert routes == {(method, path) for method, path, _, _ in MATRIX}
        admin = broker.as_(ADMIN)
        for agency, kind in (("council", "local_authority"), ("police", "police")):
            body = {"id": agency, "name": agency.title(), "type": kind}
            await broker.client.post("/v1/agencies", json=body, headers=admin)
        connector = {"base_url": "http://police.test", "public_key": police.public_key}
        await broker.client.put("/v1/agencies/police/connector", json=connector, headers=admin)
        await broker.client.post("/v1/agreements", json={**AGREEMENT, "id": "dsa"}, headers=admin)
        failures: list[str] = []
        for n, (method, template, body, allowed) in enumerate(MATRIX):
            for role in Role:
                failures += await _try(
                    broker,
                    role,
                    method=method,
                    template=template,
                    body=body,
                    allowed=allowed,
                    n=n,
                    connector=connector,
                )
    assert failures == []


async def test_the_dev_issuer_is_not_served_when_disabled(tmp_path: Path, dev_issuer: IssuerServer):
    async with running_broker(tmp_path, dev_issuer) as broker:
        response = await broker.client.post(
            "/dev-oidc/token", data={"role": "admin", "agency": "council", "name": "Eve"}
        )
    assert response.status_code == 404
