"""Property: any protocol message survives sign -> serialise -> parse -> verify unchanged."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from audit.canonical import CanonicalizationError, canonical_json
from connectors.protocol.messages import (
    FetchPerson,
    FetchRequest,
    FetchResponse,
    FetchStatus,
    FieldOffer,
    FieldType,
    HouseholdMember,
    Manifest,
    MatchCandidate,
    MatchRequest,
    MatchResponse,
    MatchStatus,
    PersonFacts,
    Refusal,
    RefusalScope,
    ReleasedFact,
    Sensitivity,
    Subject,
    WithheldField,
)
from tests.protocol.factories import fetch_response, signer_and_verifier

slugs = st.from_regex(r"[a-z][a-z0-9_]{2,20}", fullmatch=True)
field_names = st.builds(lambda a, b: f"{a}.{b}", slugs, slugs)
refs = st.text(alphabet="abcdef0123456789-", min_size=8, max_size=40)
text = st.text(max_size=60)
floats = st.floats(-(2**53) + 1, 2**53 - 1)
times = st.datetimes(
    min_value=dt.datetime(1990, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=dt.datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from(
        [dt.UTC, dt.timezone(dt.timedelta(hours=1)), dt.timezone(-dt.timedelta(hours=5.5))]
    ),
)
tokens = st.dictionaries(slugs, st.lists(st.text(min_size=1, max_size=20), max_size=3), max_size=4)
# Floats where orjson and RFC 8785 print differently, so the fast path must notice.
awkward_floats = st.sampled_from([0.0, -0.0, 2.0, 1e15, 1e-6, 9.9e-6, 1.5e-7, 1e-5, 123.5])
values = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | floats
    | awkward_floats
    | text
)

refusals = st.builds(Refusal, scope=st.sampled_from(RefusalScope), code=slugs, reason=text)
subjects = st.builds(
    Subject,
    given_name=st.text(min_size=1, max_size=30),
    family_name=st.text(min_size=1, max_size=30),
    date_of_birth=st.none() | st.dates(),
    sex=st.sampled_from([None, "F", "M", "X"]),
    postcode=st.none() | st.text(max_size=8),
    identifiers=st.dictionaries(slugs, st.text(min_size=1, max_size=20), max_size=3),
)
candidates = st.builds(
    MatchCandidate,
    ref=refs,
    score=st.floats(0, 1),
    match_weight=floats,
    agreements=st.dictionaries(slugs, slugs, max_size=4),
    tokens=tokens,
    household=st.lists(
        st.builds(HouseholdMember, ref=refs, relationship=text, tokens=tokens), max_size=3
    ),
)
messages: st.SearchStrategy[BaseModel] = st.one_of(
    st.builds(
        Manifest,
        agency_id=slugs,
        agency_name=text,
        agency_type=slugs,
        public_key=text,
        key_id=text,
        linkage_key_id=text,
        fields=st.lists(
            st.builds(
                FieldOffer,
                name=field_names,
                type=st.sampled_from(FieldType),
                sensitivity=st.sampled_from(Sensitivity),
                description=text,
            ),
            max_size=4,
        ),
    ),
    st.builds(
        MatchRequest,
        query_id=text,
        requester_agency=slugs,
        purpose=slugs,
        subject=subjects,
        include_household=st.booleans(),
        max_candidates=st.integers(1, 20),
    ),
    st.builds(
        MatchResponse,
        query_id=text,
        agency_id=slugs,
        status=st.sampled_from(MatchStatus),
        candidates=st.lists(candidates, max_size=3),
        refusal=st.none() | refusals,
    ),
    st.builds(
        FetchRequest,
        query_id=text,
        exchange_id=text,
        requester_agency=slugs,
        requester_role=slugs,
        purpose=slugs,
        legal_basis=text,
        decision_digest=text,
        break_glass=st.booleans(),
        persons=st.lists(
            st.builds(FetchPerson, ref=refs, fields=st.lists(field_names, max_size=4)), max_size=3
        ),
        broker_checkpoint=st.none() | text,
    ),
    st.builds(
        FetchResponse,
        query_id=text,
        exchange_id=text,
        agency_id=slugs,
        decision_digest=text,
        status=st.sampled_from(FetchStatus),
        persons=st.lists(
            st.builds(
                PersonFacts,
                ref=refs,
                facts=st.lists(
                    st.builds(ReleasedFact, field=field_names, value=values, as_of=times),
                    max_size=4,
                ),
                withheld=st.lists(
                    st.builds(WithheldField, field=field_names, code=slugs, reason=text),
                    max_size=2,
                ),
                refusal=st.none() | refusals,
            ),
            max_size=3,
        ),
        refusal=st.none() | refusals,
    ),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_any_message_survives_the_wire(message: BaseModel) -> None:
    pair = signer_and_verifier()
    wire = pair.signer.seal(message, "broker").to_bytes()
    opened = pair.verifier.open(wire, type(message))
    assert opened.message == message


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_the_signed_body_is_the_rfc8785_form_of_the_message(message: BaseModel) -> None:
    pair = signer_and_verifier()
    envelope = pair.signer.seal(message, "broker")
    assert envelope.signed_body() == canonical_json(message.model_dump(mode="json"))
    assert envelope.body == message.model_dump(mode="json")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_message_built_around_validation_with_a_non_finite_float_is_not_signed(
    value: float,
) -> None:
    fact = ReleasedFact.model_construct(
        field="police.score", value=value, as_of=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )
    response = FetchResponse(
        query_id="q-1",
        exchange_id="x-1",
        agency_id="police",
        decision_digest="sha256:00",
        status=FetchStatus.OK,
        persons=[PersonFacts.model_construct(ref="ref-00000001", facts=[fact])],
    )
    pair = signer_and_verifier()
    with pytest.raises(CanonicalizationError, match="NaN and infinity"):
        pair.signer.seal(response, "broker")


def test_nonces_are_unique_across_signers_with_the_same_key() -> None:
    pair = signer_and_verifier()
    twin = type(pair.signer)(pair.signer._key, pair.signer.sender)
    message = fetch_response()
    nonces = {
        signer.seal(message, "broker").header["nonce"]
        for signer in (pair.signer, twin)
        for _ in range(50)
    }
    assert len(nonces) == 100


@pytest.mark.parametrize("value", [0.0, -0.0, 2.0, -3.0, 1e15, 4e15, 1e-6, 9.9e-6, 1.5e-7, 0.25])
def test_floats_that_print_differently_in_json_libraries_are_signed_in_rfc8785_form(
    value: float,
) -> None:
    fact = ReleasedFact(field="police.score", value=value, as_of=dt.datetime(2026, 1, 1))  # noqa: DTZ001
    response = FetchResponse(
        query_id="q-1",
        exchange_id="x-1",
        agency_id="police",
        decision_digest="sha256:00",
        status=FetchStatus.OK,
        persons=[PersonFacts(ref="ref-00000001", facts=[fact])],
    )
    envelope = signer_and_verifier().signer.seal(response, "broker")
    assert envelope.signed_body() == canonical_json(response.model_dump(mode="json"))
