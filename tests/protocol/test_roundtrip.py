"""Property: any protocol message survives sign -> serialise -> parse -> verify unchanged."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

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
from tests.protocol.factories import signer_and_verifier

slugs = st.from_regex(r"[a-z][a-z0-9_]{2,20}", fullmatch=True)
field_names = st.builds(lambda a, b: f"{a}.{b}", slugs, slugs)
refs = st.text(alphabet="abcdef0123456789-", min_size=8, max_size=40)
text = st.text(max_size=60)
floats = st.floats(-(2**53) + 1, 2**53 - 1)
times = st.datetimes(
    min_value=dt.datetime(1990, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=dt.datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(dt.UTC),
)
tokens = st.dictionaries(slugs, st.lists(st.text(min_size=1, max_size=20), max_size=3), max_size=4)
values = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | floats | text

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
