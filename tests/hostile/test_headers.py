"""What every answer tells the browser and any cache between: never guess a media type,
never keep an answer that may hold personal data, never frame a printable report.

A browser that sniffs a JSON answer or a problem body as HTML would run what a caller
wrote into it; a shared or browser cache that keeps a family query's answer, a consent
or a subject access report shows it to the next person at that desk.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from schemathesis.python import asgi

from broker.identity.principal import Role
from tests.hostile.hostile_kit import HostileRegion
from tests.hostile.test_envelopes import family_query

NOSNIFF = ("x-content-type-options", "nosniff")


@pytest.fixture
def connector(hostile_region: HostileRegion) -> Iterator[asgi.ASGIClient]:
    with asgi.get_client(hostile_region.connectors["police"].app) as client:
        yield client


def _child(region: HostileRegion) -> dict[str, object]:
    return next(
        p
        for p in region.truth["people"]
        if p["role"] == "child" and {"education", "health"} <= set(p["records"])
    )


@pytest.mark.parametrize(
    "path",
    [
        "/health",
        "/openapi.json",
        "/v1/agencies",  # a 401 problem
        "/v1/no-such-thing",  # a 404 problem
        "/web/sign-in",
        "/web/static/junction.css",
        "/web",  # a redirect
    ],
)
def test_no_broker_answer_may_be_sniffed_as_another_media_type(
    hostile_region: HostileRegion, path: str
) -> None:
    response = hostile_region.client.get(path)
    assert response.status_code < 500
    assert response.headers.get(NOSNIFF[0]) == NOSNIFF[1]


@pytest.mark.parametrize("path", ["/health", "/v1/manifest", "/v1/match"])
def test_no_connector_answer_may_be_sniffed_as_another_media_type(
    connector: asgi.ASGIClient, path: str
) -> None:
    response = connector.get(path)
    assert response.headers.get(NOSNIFF[0]) == NOSNIFF[1]


def test_a_family_query_answer_and_a_consent_are_never_kept_by_a_cache(
    hostile_region: HostileRegion,
) -> None:
    headers = hostile_region.headers()
    answer = hostile_region.client.post(
        "/v1/family-queries", json=family_query(_child(hostile_region)), headers=headers
    )
    assert answer.status_code == 200, answer.text
    consent = hostile_region.client.post(
        "/v1/consents",
        json={
            "identifiers": [{"kind": "local_ref", "value": "police:cache-test-1"}],
            "purpose": "early_help_assessment",
            "scope": ["police"],
            "channel": "paper",
        },
        headers=headers,
    )
    assert consent.status_code == 201, consent.text
    again = hostile_region.client.get(f"/v1/consents/{consent.json()['id']}", headers=headers)
    refused = hostile_region.client.get("/v1/agencies", headers=headers)
    for response in (answer, consent, again, refused):
        assert response.headers.get("cache-control") == "no-store", response.request.url


def test_a_connector_answer_is_never_kept_by_a_cache(connector: asgi.ASGIClient) -> None:
    response = connector.get("/v1/manifest")
    assert response.status_code == 200
    assert response.headers.get("cache-control") == "no-store"


def test_the_printable_subject_access_report_runs_no_script_and_cannot_be_framed(
    hostile_region: HostileRegion,
) -> None:
    child = _child(hostile_region)
    response = hostile_region.client.post(
        "/v1/oversight/subject-access?format=html",
        json={
            "identifiers": [
                {"kind": "nhs_number", "value": child.get("nhs_number") or "9434765919"}
            ]
        },
        headers=hostile_region.headers(Role.IG_OFFICER),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers.get("content-security-policy", "")
    assert "default-src 'none'" in policy
    assert "script-src" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers.get("x-frame-options") == "DENY"
    assert response.headers.get("cache-control") == "no-store"
    assert response.headers.get(NOSNIFF[0]) == NOSNIFF[1]
