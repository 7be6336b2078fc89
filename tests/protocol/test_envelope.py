"""Signed envelopes: every rejection has its own error, with real Ed25519 keys."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from connectors.protocol import Envelope, KeyPair, KeyRing, Verifier
from connectors.protocol import errors as e
from connectors.protocol.messages import FetchResponse, MatchRequest
from tests.protocol.factories import fetch_response, signer_and_verifier


def _wire(envelope: Envelope) -> dict[str, Any]:
    return json.loads(envelope.to_bytes())


def test_a_sealed_message_opens_to_the_same_message() -> None:
    pair = signer_and_verifier()
    message = fetch_response()
    opened = pair.verifier.open(pair.signer.seal(message, "broker").to_bytes(), FetchResponse)
    assert opened.message == message
    assert opened.sender == "police"
    assert opened.key_id == pair.key.key_id


def test_the_wire_form_is_canonical_json() -> None:
    pair = signer_and_verifier()
    envelope = pair.signer.seal(fetch_response(), "broker")
    wire = _wire(envelope)
    body = json.dumps(wire["body"], sort_keys=True, separators=(",", ":")).encode()
    assert envelope.signed_body() == body
    assert wire["header"]["body_digest"].startswith("sha256:")


def test_a_forged_signature_is_rejected() -> None:
    pair = signer_and_verifier()
    wire = _wire(pair.signer.seal(fetch_response(), "broker"))
    wire["signature"] = base64.b64encode(KeyPair.generate().sign(b"forged")).decode()
    with pytest.raises(e.BadSignature):
        pair.verifier.open(json.dumps(wire), FetchResponse)


def test_a_signature_that_is_not_base64_is_a_bad_signature() -> None:
    pair = signer_and_verifier()
    wire = _wire(pair.signer.seal(fetch_response(), "broker"))
    wire["signature"] = "***"
    with pytest.raises(e.BadSignature):
        pair.verifier.open(json.dumps(wire), FetchResponse)


def test_an_envelope_signed_by_an_unknown_key_is_rejected() -> None:
    pair = signer_and_verifier()
    stranger = signer_and_verifier()  # same sender name, different key
    with pytest.raises(e.UnknownKey):
        pair.verifier.open(
            stranger.signer.seal(fetch_response(), "broker").to_bytes(), FetchResponse
        )


def test_a_trusted_key_used_under_another_senders_name_is_rejected() -> None:
    pair = signer_and_verifier(sender="police")
    other = KeyPair.generate()
    pair.verifier.keyring.add("health", other.public_key)
    from connectors.protocol import Signer

    impostor = Signer(other, "police", clock=pair.clock)
    with pytest.raises(e.UnknownKey, match="belongs to 'health'"):
        pair.verifier.open(impostor.seal(fetch_response(), "broker").to_bytes(), FetchResponse)


def test_an_envelope_for_another_audience_is_rejected() -> None:
    pair = signer_and_verifier()
    with pytest.raises(e.WrongAudience):
        pair.verifier.open(pair.signer.seal(fetch_response(), "housing").to_bytes(), FetchResponse)


def test_an_expired_envelope_is_rejected() -> None:
    pair = signer_and_verifier()
    raw = pair.signer.seal(fetch_response(), "broker").to_bytes()
    pair.clock.now += 60 + 31  # lifetime plus more than the allowed skew
    with pytest.raises(e.Expired):
        pair.verifier.open(raw, FetchResponse)


def test_an_envelope_from_the_future_is_not_yet_valid() -> None:
    pair = signer_and_verifier()
    raw = pair.signer.seal(fetch_response(), "broker").to_bytes()
    pair.clock.now -= 120
    with pytest.raises(e.NotYetValid):
        pair.verifier.open(raw, FetchResponse)


def test_small_clock_skew_is_tolerated() -> None:
    pair = signer_and_verifier()
    raw = pair.signer.seal(fetch_response(), "broker").to_bytes()
    pair.clock.now -= 20
    assert pair.verifier.open(raw, FetchResponse).sender == "police"


def test_a_replayed_envelope_is_rejected() -> None:
    pair = signer_and_verifier()
    raw = pair.signer.seal(fetch_response(), "broker").to_bytes()
    pair.verifier.open(raw, FetchResponse)
    with pytest.raises(e.Replayed):
        pair.verifier.open(raw, FetchResponse)


def test_a_rejected_envelope_does_not_use_up_its_nonce() -> None:
    pair = signer_and_verifier()
    envelope = pair.signer.seal(fetch_response(), "broker")
    with pytest.raises(e.WrongMessageType):
        pair.verifier.open(envelope.to_bytes(), MatchRequest)
    assert pair.verifier.open(envelope.to_bytes(), FetchResponse).sender == "police"


def test_an_altered_body_is_rejected() -> None:
    pair = signer_and_verifier()
    wire = _wire(pair.signer.seal(fetch_response(), "broker"))
    wire["body"]["persons"][0]["facts"][0]["value"] = 0.999
    with pytest.raises(e.AlteredBody):
        pair.verifier.open(json.dumps(wire), FetchResponse)


def test_an_altered_header_breaks_the_signature() -> None:
    pair = signer_and_verifier()
    wire = _wire(pair.signer.seal(fetch_response(), "broker"))
    wire["header"]["exp"] += 3600
    with pytest.raises(e.BadSignature):
        pair.verifier.open(json.dumps(wire), FetchResponse)


@pytest.mark.parametrize("member", ["header", "body", "signature"])
def test_a_missing_envelope_member_is_named(member: str) -> None:
    pair = signer_and_verifier()
    wire = _wire(pair.signer.seal(fetch_response(), "broker"))
    del wire[member]
    with pytest.raises(e.MissingField, match=member):
        pair.verifier.open(json.dumps(wire), FetchResponse)


@pytest.mark.parametrize("member", ["kid", "audience", "exp", "nonce", "body_digest"])
def test_a_missing_header_field_is_named(member: str) -> None:
    pair = signer_and_verifier()
    wire = _wire(pair.signer.seal(fetch_response(), "broker"))
    del wire["header"][member]
    with pytest.raises(e.MissingField, match=member):
        pair.verifier.open(json.dumps(wire), FetchResponse)


def test_a_body_missing_a_required_field_is_named() -> None:
    """A signer that seals an incomplete body still cannot get it accepted."""
    pair = signer_and_verifier()
    message = fetch_response()
    envelope = pair.signer.seal(message, "broker")
    body = dict(envelope.body)
    del body["decision_digest"]
    resealed = _reseal(pair.key, envelope.header, body)
    with pytest.raises(e.MissingField, match="decision_digest"):
        pair.verifier.open(resealed, FetchResponse)


def _reseal(key: KeyPair, header: dict[str, Any], body: dict[str, Any]) -> bytes:
    from connectors.protocol.envelope import body_digest, canonical_json

    header = {**header, "body_digest": body_digest(body)}
    signature = base64.b64encode(key.sign(canonical_json(header))).decode()
    return json.dumps({"header": header, "body": body, "signature": signature}).encode()


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[]", b'{"header": 1, "body": {}, "signature": "x"}', b"[" * 5000]
)
def test_garbage_is_a_malformed_envelope(raw: bytes) -> None:
    pair = signer_and_verifier()
    with pytest.raises(e.EnvelopeError):
        pair.verifier.open(raw, FetchResponse)


def test_an_envelope_asking_to_live_too_long_is_refused() -> None:
    pair = signer_and_verifier()
    envelope = pair.signer.seal(fetch_response(), "broker")
    header = {**envelope.header, "exp": envelope.header["iat"] + 86_400}
    with pytest.raises(e.Expired, match="lifetime"):
        pair.verifier.open(_reseal(pair.key, header, envelope.body), FetchResponse)


def test_every_rejection_carries_a_problem_code_title_and_status() -> None:
    for error in (
        e.BadSignature,
        e.UnknownKey,
        e.WrongAudience,
        e.Expired,
        e.NotYetValid,
        e.Replayed,
        e.AlteredBody,
        e.MissingField,
        e.MalformedEnvelope,
        e.WrongMessageType,
    ):
        assert error.code.startswith("envelope-")
        assert 400 <= error.status < 500
    codes = [c.code for c in e.EnvelopeError.__subclasses__()]
    assert len(codes) == len(set(codes))


def test_the_replay_cache_stays_within_its_capacity() -> None:
    pair = signer_and_verifier()
    ring = KeyRing()
    ring.add("police", pair.key.public_key)
    from connectors.protocol import ReplayCache

    cache = ReplayCache(capacity=10)
    verifier = Verifier(ring, "broker", replay_cache=cache, clock=pair.clock)
    for _ in range(25):
        verifier.open(pair.signer.seal(fetch_response(1, 1), "broker").to_bytes(), FetchResponse)
    assert len(cache) <= 10


def test_a_byte_changed_in_the_transmitted_body_is_an_altered_body() -> None:
    pair = signer_and_verifier()
    wire = pair.signer.seal(fetch_response(), "broker").to_bytes()
    tampered = wire.replace(b'"ref-00000003"', b'"ref-00000004"', 1)
    assert tampered != wire
    with pytest.raises(e.AlteredBody):
        pair.verifier.open(tampered, FetchResponse)


def test_an_envelope_reformatted_on_the_way_still_verifies() -> None:
    """A proxy that pretty-prints or reorders JSON does not break the signature."""
    pair = signer_and_verifier()
    message = fetch_response()
    wire = json.loads(pair.signer.seal(message, "broker").to_bytes())
    reformatted = json.dumps({"signature": wire["signature"], **wire}, indent=2)
    assert pair.verifier.open(reformatted, FetchResponse).message == message


def test_a_header_member_of_the_wrong_type_is_malformed() -> None:
    pair = signer_and_verifier()
    wire = _wire(pair.signer.seal(fetch_response(), "broker"))
    wire["header"]["nonce"] = {"nested": True}
    with pytest.raises(e.MalformedEnvelope, match="nonce"):
        pair.verifier.open(json.dumps(wire), FetchResponse)
