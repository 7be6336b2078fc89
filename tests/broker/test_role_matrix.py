"""Every endpoint enforces exactly the roles its description names.

Each protected route's OpenAPI description starts "Roles: `a`, `b`." (``roles_text``).
For every route and every role the test calls it with a token of that role: a role not
named gets 403 with a problem body; a named role gets past the role check (whatever the
request then meets: 404, 422, 200). No token at all gets 401.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broker.identity import Role
from tests.broker.foundation_kit import IssuerServer, running_broker

pytestmark = pytest.mark.anyio

_ROLES = re.compile(r"Roles: ((?:`[a-z_]+`(?:, )?)+)\.")


def _named_roles(description: str) -> set[Role] | None:
    found = _ROLES.search(description)
    if found is None:
        return None
    return {Role(name) for name in re.findall(r"`([a-z_]+)`", found.group(1))}


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


async def test_every_route_enforces_the_roles_it_names(
    tmp_path: Path, dev_issuer: IssuerServer
) -> None:
    async with running_broker(tmp_path, dev_issuer) as broker:
        paths = broker.app.openapi()["paths"]
        operations = [
            (path, method.upper(), _named_roles(operation.get("description", "")))
            for path, methods in paths.items()
            if path.startswith("/v1/")
            for method, operation in methods.items()
        ]
        unnamed = [f"{m} {p}" for p, m, roles in operations if roles is None]
        assert unnamed == [], f"operations that do not say who may call them: {unnamed}"
        checked = 0
        for path, method, allowed in operations:
            assert allowed is not None
            url = _concrete(path)
            anonymous = await broker.client.request(method, url, json={})
            assert anonymous.status_code == 401, (method, url)
            for role in Role:
                response = await broker.client.request(
                    method, url, json={}, headers=broker.as_(role)
                )
                if role in allowed:
                    assert response.status_code not in (401, 403), (method, url, role)
                else:
                    assert response.status_code == 403, (method, url, role)
                    assert response.headers["content-type"].startswith("application/problem+json")
                checked += 1
        assert checked > 60


async def test_the_separation_the_issue_names(tmp_path: Path, dev_issuer: IssuerServer) -> None:
    """An IG officer sees audit but no agency facts; a caseworker sees no audit."""
    async with running_broker(tmp_path, dev_issuer) as broker:
        ig = broker.as_(Role.IG_OFFICER)
        caseworker = broker.as_(Role.CASEWORKER)
        assert (
            await broker.client.post("/v1/family-queries", json={}, headers=ig)
        ).status_code == 403
        # The policy load at start-up is entry 0; wait until a checkpoint covers it.
        await broker.audit.receipt_async(0, timeout=10)
        for url in ("/v1/audit/checkpoint", "/v1/oversight/anomalies"):
            assert (await broker.client.get(url, headers=caseworker)).status_code == 403
            assert (await broker.client.get(url, headers=ig)).status_code == 200
