"""Every envelope the connector refuses gets a precise problem and a local audit entry."""

from __future__ import annotations

import base64
from collections.abc import Callable

import orjson
import pytest

from connectors.protocol.envelope import Envelope, Signer
from connectors.protocol.keys import KeyPair
from connectors.protocol.messages import MatchResponse
from connectors.service import AuditKind
from tests.connectors.service_kit import Rig, build_rig, fetch_request, match_request

pytestmark = pytest.mark.anyio


def _forged(rig: Rig) -> bytes:
    """Signed by another key, but carrying the broker's key id."""
    envelope = rig.broker.seal(match_request(), rig.agency_id)
    impostor = Signer(KeyPair.generate(), "broker", clock=rig.clock).seal(
        match_request(), rig.agency_id
    )
    header = dict(impostor.header, kid=envelope.header["kid"])
    return orjson.dumps({"header": header, "body": impostor.body, "signature": impostor.signature})


def _unknown_key(rig: Rig) -> bytes:
    stranger = Signer(KeyPair.generate(), "broker", clock=rig.clock)
    return stranger.seal(match_request(), rig.agency_id).to_bytes()


def _expired(rig: Rig) -> bytes:
    envelope = rig.broker.seal(match_request(), rig.agency_id)
    rig.clock.now += 3600
    return envelope.to_bytes()


def _wrong_audience(rig: Rig) -> bytes:
    return rig.broker.seal(match_request(), "health").to_bytes()


def _altered_body(rig: Rig) -> bytes:
    envelope = rig.broker.seal(match_request(), rig.agency_id)
    body = dict(envelope.body, purpose="early_help_assessment")
    return orjson.dumps({**envelope.to_dict(), "body": body})


def _bad_base64_signature(rig: Rig) -> bytes:
    envelope = rig.broker.seal(match_request(), rig.agency_id)
    return orjson.dumps({**envelope.to_dict(), "signature": "not base64!"})


def _wrong_type(rig: Rig) -> bytes:
    return rig.broker.seal(fetch_request({"pol-0001-ann": []}), rig.agency_id).to_bytes()


def _not_json(rig: Rig) -> bytes:
    return b'{"header": {'


def _no_signature(rig: Rig) -> bytes:
    envelope = rig.broker.seal(match_request(), rig.agency_id)
    return orjson.dumps({"header": envelope.header, "body": envelope.body})


def _number_beyond_i_json(rig: Rig) -> bytes:
    """Re-serialised (so not in the wire framing), with an integer JCS cannot express."""
    envelope = rig.broker.seal(match_request(), rig.agency_id)
    body = {**envelope.body, "max_candidates": 2**53 + 1}
    return orjson.dumps({**envelope.to_dict(), "body": body}, option=orjson.OPT_INDENT_2)


CASES: dict[str, tuple[Callable[[Rig], bytes], int, str]] = {
    "forged": (_forged, 401, "envelope-bad-signature"),
    "bad-base64-signature": (_bad_base64_signature, 401, "envelope-bad-signature"),
    "unknown-key": (_unknown_key, 401, "envelope-unknown-key"),
    "expired": (_expired, 401, "envelope-expired"),
    "wrong-audience": (_wrong_audience, 403, "envelope-wrong-audience"),
    "altered-body": (_altered_body, 401, "envelope-altered-body"),
    "wrong-message-type": (_wrong_type, 422, "envelope-wrong-type"),
    "not-json": (_not_json, 400, "envelope-malformed"),
    "no-signature": (_no_signature, 400, "envelope-missing-field"),
    "number-beyond-i-json": (_number_beyond_i_json, 400, "envelope-malformed"),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_rejected_envelope_is_a_problem_and_an_audit_entry(case: str) -> None:
    rig = build_rig()
    make, status, code = CASES[case]
    raw = make(rig)
    async with rig.client() as client:
        response = await client.post(
            "/v1/match", content=raw, headers={"content-type": "application/json"}
        )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == f"urn:junction:problem:{code}"
    assert problem["instance"] == "/v1/match"
    assert problem["detail"]
    assert [e.kind for e in rig.audit.events] == [AuditKind.REJECTION]
    event = rig.audit.events[0]
    assert event.decision == "rejected"
    assert event.reasons == (code, "endpoint:match")
    assert event.request_digest is not None
    assert event.request_digest.startswith("sha256:")
    assert rig.source.reads == []


async def test_a_number_beyond_i_json_is_named_not_echoed() -> None:
    rig = build_rig()
    async with rig.client() as client:
        response = await client.post("/v1/match", content=_number_beyond_i_json(rig))
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "no RFC 8785 canonical form" in detail
    assert "2**53" in detail
    assert str(2**53 + 1) not in detail


async def test_replayed_envelope_is_refused_the_second_time() -> None:
    rig = build_rig()
    raw = rig.broker.seal(match_request(), rig.agency_id).to_bytes()
    async with rig.client() as client:
        first = await client.post("/v1/match", content=raw)
        second = await client.post("/v1/match", content=raw)
    assert first.status_code == 200
    assert rig.open_answer(first.content, MatchResponse).status == "matched"
    assert second.status_code == 409
    assert second.json()["type"] == "urn:junction:problem:envelope-replayed"
    assert [e.kind for e in rig.audit.events] == [AuditKind.MATCH, AuditKind.REJECTION]
    assert rig.audit.events[1].counterparty == "broker"
    assert rig.audit.events[1].reasons[0] == "envelope-replayed"


async def test_rejected_fetch_reads_nothing_and_is_audited() -> None:
    rig = build_rig()
    envelope = rig.broker.seal(
        fetch_request({"pol-0001-ann": ["police.callouts_12m"]}), rig.agency_id
    )
    body = dict(envelope.body, persons=[{"ref": "pol-0002-bob", "fields": ["police.callouts_12m"]}])
    async with rig.client() as client:
        response = await client.post(
            "/v1/fetch", content=orjson.dumps({**envelope.to_dict(), "body": body})
        )
    assert response.status_code == 401
    assert response.json()["type"] == "urn:junction:problem:envelope-altered-body"
    assert rig.source.reads == []
    assert rig.audit.events[0].reasons == ("envelope-altered-body", "endpoint:fetch")


async def test_a_signature_by_the_agency_itself_is_not_the_broker() -> None:
    rig = build_rig()
    own = Signer(rig.agency_key, "broker", clock=rig.clock).seal(match_request(), rig.agency_id)
    async with rig.client() as client:
        response = await client.post("/v1/match", content=own.to_bytes())
    assert response.status_code == 401
    assert response.json()["type"] == "urn:junction:problem:envelope-unknown-key"


async def test_rejections_are_counted_in_metrics() -> None:
    rig = build_rig()
    async with rig.client() as client:
        await client.post("/v1/match", content=_wrong_audience(rig))
        metrics = await client.get("/metrics")
    assert 'junction_connector_requests_total{endpoint="match",outcome="rejected"} 1.0' in (
        metrics.text
    )


def test_envelope_wire_form_round_trips() -> None:
    rig = build_rig()
    envelope = rig.broker.seal(match_request(), rig.agency_id)
    again = Envelope.parse(envelope.to_bytes())
    assert base64.b64decode(again.signature) == base64.b64decode(envelope.signature)
