"""Bearer tokens the broker must refuse: unknown issuer, forged, expired, wrong role.

Each is refused with a problem body saying what to do. A signed-in caller refused for
their role is an audit entry; a token that names nobody trustworthy (unknown issuer,
forged, expired) is not, since anyone could otherwise grow the append-only log at will.
"""

from __future__ import annotations

import time

import pytest

from broker.identity.dev_issuer import DevIssuer
from broker.identity.principal import Role
from connectors.protocol.keys import KeyPair, load_private_key
from tests.hostile.hostile_kit import HostileRegion

AUDIENCE = "junction-broker"


def _issuer_url(region: HostileRegion) -> str:
    issuer = region.foundation.dev_issuer
    assert issuer is not None
    return issuer.issuer


def _mint(issuer: DevIssuer, role: Role = Role.ADMIN) -> str:
    return issuer.mint(role=role, agency="broker", name="Mallory")


def _unknown_issuer(region: HostileRegion) -> str:
    return _mint(DevIssuer(KeyPair.generate(), "https://idp.attacker.example", AUDIENCE))


def _forged(region: HostileRegion) -> str:
    return _mint(DevIssuer(KeyPair.generate(), _issuer_url(region), AUDIENCE))


def _expired(region: HostileRegion) -> str:
    key = load_private_key(region.layout.broker_data / "dev-oidc.key")
    two_hours_ago = DevIssuer(key, _issuer_url(region), AUDIENCE, clock=lambda: time.time() - 7200)
    return _mint(two_hours_ago)


def _other_audience(region: HostileRegion) -> str:
    key = load_private_key(region.layout.broker_data / "dev-oidc.key")
    return _mint(DevIssuer(key, _issuer_url(region), "another-service"))


# case -> (token maker, problem code, what the detail tells the caller)
REFUSED = {
    "unknown issuer": (_unknown_issuer, "unknown-issuer", "are not accepted; sign in through"),
    "forged signature": (_forged, "bad-token", "was not signed by it"),
    "expired": (_expired, "token-expired", "sign in again"),
    "meant for another service": (_other_audience, "bad-token", "audience must be"),
}


def _refusals(region: HostileRegion) -> int:
    return len(region.entries(kind="refusal"))


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_bad_token_is_refused_with_a_clear_problem(
    hostile_region: HostileRegion, case: str
) -> None:
    make, code, advice = REFUSED[case]
    token = make(hostile_region)
    before = _refusals(hostile_region)
    response = hostile_region.client.get(
        "/v1/agencies", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    problem = response.json()
    assert problem["type"] == f"urn:junction:problem:{code}"
    assert problem["instance"] == "/v1/agencies"
    assert advice in problem["detail"]
    assert token not in response.text
    assert _refusals(hostile_region) == before


def test_a_garbage_token_is_refused(hostile_region: HostileRegion) -> None:
    for token in ("not-a-jwt", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "x" * 4000):
        response = hostile_region.client.get(
            "/v1/agencies", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, token
        code = response.json()["type"].removeprefix("urn:junction:problem:")
        assert code in {"bad-token", "unknown-issuer"}, token


@pytest.mark.parametrize(
    ("role", "method", "path"),
    [
        (Role.CASEWORKER, "POST", "/v1/agencies"),
        (Role.CASEWORKER, "POST", "/v1/audit/search"),
        (Role.CONNECTOR, "POST", "/v1/family-queries"),
        (Role.IG_OFFICER, "POST", "/v1/family-queries"),
    ],
)
def test_a_role_that_may_not_is_refused_and_audited(
    hostile_region: HostileRegion, role: Role, method: str, path: str
) -> None:
    agency = "education" if role is Role.CONNECTOR else "council"
    headers = hostile_region.headers(role, agency=agency)
    before = hostile_region.entries(kind="refusal")
    response = hostile_region.client.request(method, path, json={}, headers=headers)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:junction:problem:forbidden"
    assert f"the {role.value} role may not do this" in problem["detail"]
    new = hostile_region.entries(kind="refusal")[len(before) :]
    assert len(new) == 1
    entry = new[0].fields
    assert entry["decision"] == "deny"
    assert entry["actor_agency"] == agency
    assert entry["reasons"][:2] == ["role_not_allowed", f"role:{role.value}"]
    assert entry["reasons"][2].startswith(f"{method} /v1/")
