"""Forged, replayed, expired and re-addressed envelopes, both ways across the boundary.

Towards a real connector (the demo police connector, with its real local audit log): each
is refused with a precise problem and recorded in the connector's own log. Towards the
broker (a connector's answer tampered with on the way back): the answer is never used,
the agency is reported in error, and the broker's audit entry for the exchange says so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from schemathesis.python import asgi

from connectors.protocol.envelope import Signer
from connectors.protocol.keys import KeyPair, load_private_key
from connectors.protocol.messages import FetchResponse, MatchResponse
from tests.connectors.service_kit import match_request
from tests.hostile.hostile_kit import HostileRegion

AGENCY = "police"
Forge = Callable[[HostileRegion], bytes]


def _broker_signer(region: HostileRegion, *, clock: Callable[[], float] = time.time) -> Signer:
    return Signer(load_private_key(region.layout.keys / "broker.key"), "broker", clock=clock)


def _forged(region: HostileRegion) -> bytes:
    """Signed by a stranger's key but carrying the broker's key id."""
    genuine = _broker_signer(region).seal(match_request(), AGENCY)
    impostor = Signer(KeyPair.generate(), "broker").seal(match_request(), AGENCY)
    header = dict(impostor.header, kid=genuine.header["kid"])
    wire = {"header": header, "body": impostor.body, "signature": impostor.signature}
    return json.dumps(wire).encode()


def _expired(region: HostileRegion) -> bytes:
    an_hour_ago = _broker_signer(region, clock=lambda: time.time() - 3600)
    return an_hour_ago.seal(match_request(), AGENCY).to_bytes()


def _readdressed(region: HostileRegion) -> bytes:
    return _broker_signer(region).seal(match_request(), "health").to_bytes()


def _by_another_agency(region: HostileRegion) -> bytes:
    """Health's own key, pretending to be the broker."""
    health = load_private_key(region.layout.keys / "health.key")
    return Signer(health, "broker").seal(match_request(), AGENCY).to_bytes()


CASES: dict[str, tuple[Forge, int, str]] = {
    "forged": (_forged, 401, "envelope-bad-signature"),
    "expired": (_expired, 401, "envelope-expired"),
    "re-addressed": (_readdressed, 403, "envelope-wrong-audience"),
    "signed-by-another-agency": (_by_another_agency, 401, "envelope-unknown-key"),
}


@pytest.fixture
def connector(hostile_region: HostileRegion) -> Iterator[asgi.ASGIClient]:
    with asgi.get_client(hostile_region.connectors[AGENCY].app) as client:
        yield client


def _rejections(region: HostileRegion) -> list[Any]:
    return [e for e in region.connector_entries(AGENCY) if e.fields["decision"] == "deny"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_connector_refuses_a_bad_envelope_and_records_it(
    hostile_region: HostileRegion, connector: asgi.ASGIClient, case: str
) -> None:
    make, status, code = CASES[case]
    before = len(hostile_region.connector_entries(AGENCY))
    response = connector.post(
        "/v1/match", data=make(hostile_region), headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == f"urn:junction:problem:{code}"
    assert problem["detail"]
    new = hostile_region.connector_entries(AGENCY)[before:]
    assert len(new) == 1
    assert new[0].fields["decision"] == "deny"
    assert new[0].fields["reasons"][:2] == [code, "endpoint:match"]
    assert new[0].fields.get("fields_released", []) == []


def test_a_connector_answers_an_envelope_once_and_refuses_its_replay(
    hostile_region: HostileRegion, connector: asgi.ASGIClient
) -> None:
    wire = _broker_signer(hostile_region).seal(match_request(), AGENCY).to_bytes()
    first = connector.post("/v1/match", data=wire, headers={"content-type": "application/json"})
    rejected_before = len(_rejections(hostile_region))
    again = connector.post("/v1/match", data=wire, headers={"content-type": "application/json"})
    assert first.status_code == 200
    assert again.status_code == 409
    assert again.json()["type"] == "urn:junction:problem:envelope-replayed"
    rejected = _rejections(hostile_region)
    assert len(rejected) == rejected_before + 1
    assert rejected[-1].fields["reasons"][0] == "envelope-replayed"


# -- the broker's checks of what connectors answer ---------------------------------------


class _Tampering(httpx.AsyncBaseTransport):
    """Lets the real connector answer, then hands ``alter`` its envelope on the way back."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, alter: Callable[[str, bytes], bytes]
    ) -> None:
        self.inner, self.alter = inner, alter

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        if response.status_code != 200:
            return response
        content = self.alter(request.url.path, response.content)
        return httpx.Response(200, content=content, headers={"content-type": "application/json"})


def _resealed(
    key: KeyPair, sender: str, audience: str, *, clock: Callable[[], float] = time.time
) -> Callable[[str, bytes], bytes]:
    signer = Signer(key, sender, clock=clock)

    def alter(path: str, content: bytes) -> bytes:
        body = json.loads(content)["body"]
        model = FetchResponse if path == "/v1/fetch" else MatchResponse
        return signer.seal(model.model_validate(body), audience).to_bytes()

    return alter


def _replaying() -> Callable[[str, bytes], bytes]:
    """Keeps the first answer to each endpoint and sends it back for every later call."""
    kept: dict[str, bytes] = {}

    def alter(path: str, content: bytes) -> bytes:
        return kept.setdefault(path, content)

    return alter


@contextmanager
def _tampered(region: HostileRegion, agency: str, alter: Callable[[str, bytes], bytes]) -> Any:
    netloc = region.netloc(agency)
    original = region.transport.routes[netloc]
    region.transport.routes[netloc] = _Tampering(original, alter)
    try:
        yield
    finally:
        region.transport.routes[netloc] = original


def _child(region: HostileRegion) -> dict[str, Any]:
    return next(
        p
        for p in region.truth["people"]
        if p["role"] == "child" and {"education", "health"} <= set(p["records"])
    )


def family_query(person: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": {
            "given_name": person["given_name"],
            "family_name": person["family_name"],
            "date_of_birth": person["date_of_birth"],
            "sex": person["sex"],
            "postcode": person["postcode"],
        },
        "purpose": "child_in_need_assessment",
        "legal_basis": "public_task",
        "gateway": "ca1989_s17",
        "case_reference": "CIN-2026-0001",
        "justification": "Referral from school about attendance and welfare.",
        "conditions": ["art9_2_g_para18", "art10_para18"],
        "consent_not_sought_reason": "would_prejudice_protection",
    }
    body.update(changes)
    return body


def _ask(region: HostileRegion, body: dict[str, Any]) -> dict[str, Any]:
    response = region.client.post("/v1/family-queries", json=body, headers=region.headers())
    assert response.status_code == 200, response.text
    return dict(response.json())


def _agency(view: dict[str, Any], agency: str) -> dict[str, Any]:
    return next(a for a in view["agencies"] if a["agency_id"] == agency)


def _education_facts(view: dict[str, Any]) -> list[Any]:
    return [fact for member in view["members"] for fact in member["facts"].get("education", [])]


def _assert_refused_and_audited(region: HostileRegion, view: dict[str, Any]) -> None:
    education = _agency(view, "education")
    assert education["status"] == "error", education
    assert _education_facts(view) == []
    assert _agency(view, "health")["status"] == "ok"
    exchanges = [
        e
        for e in region.entries(query_id=view["query_id"])
        if e.kind in {"match", "fetch"} and e.fields.get("counterparty_agency") == "education"
    ]
    assert exchanges, "the refused exchange has an audit entry"
    assert all(e.fields["decision"] != "allow" for e in exchanges)
    assert all(e.fields.get("fields_released", []) == [] for e in exchanges)


def _impostor_answers(region: HostileRegion) -> dict[str, Callable[[str, bytes], bytes]]:
    education = load_private_key(region.layout.keys / "education.key")
    police = load_private_key(region.layout.keys / "police.key")
    return {
        "re-addressed to another broker": _resealed(education, "education", "another-broker"),
        "expired": _resealed(education, "education", "broker", clock=lambda: time.time() - 3600),
        "signed with another agency's key": _resealed(police, "education", "broker"),
        "signed by a stranger": _resealed(KeyPair.generate(), "education", "broker"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "re-addressed to another broker",
        "expired",
        "signed with another agency's key",
        "signed by a stranger",
    ],
)
def test_the_broker_never_uses_a_bad_answer(hostile_region: HostileRegion, case: str) -> None:
    alter = _impostor_answers(hostile_region)[case]
    with _tampered(hostile_region, "education", alter):
        view = _ask(hostile_region, family_query(_child(hostile_region)))
    _assert_refused_and_audited(hostile_region, view)


def test_the_broker_refuses_an_answer_replayed_from_an_earlier_query(
    hostile_region: HostileRegion,
) -> None:
    person = _child(hostile_region)
    with _tampered(hostile_region, "education", _replaying()):
        first = _ask(hostile_region, family_query(person))
        replayed = _ask(hostile_region, family_query(person, case_reference="CIN-2026-0002"))
    assert _agency(first, "education")["status"] == "ok"
    assert _education_facts(first)
    _assert_refused_and_audited(hostile_region, replayed)
