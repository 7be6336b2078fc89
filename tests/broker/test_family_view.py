"""The family view built from what one query gathered, without connectors or a broker."""

from __future__ import annotations

import datetime as dt

from broker.federation.client import CallOutcome, CallStatus
from broker.federation.linking import Linkage, LinkRecord, Member
from broker.queries.render import ViewBuilder
from broker.queries.schemas import FamilyQueryRequest, FamilyView, RetentionView
from connectors.protocol.messages import FetchResponse, FetchStatus, PersonFacts, ReleasedFact
from policies.model import ExchangeDecision, FamilyDecision, SubmitDecision, Tier

ASKED = dt.datetime(2026, 11, 23, 23, 30, tzinfo=dt.UTC)
REQUEST = FamilyQueryRequest.model_validate(
    {
        "subject": {"given_name": "Amelia", "family_name": "Okafor"},
        "purpose": "early_help_assessment",
        "legal_basis": "public_task",
        "gateway": "ca2004_s10",
        "justification": "School raised attendance concerns.",
    }
)


def _exchange(agency: str, retention_days: int, tier: Tier = "full") -> ExchangeDecision:
    return ExchangeDecision(
        agency_id=agency,
        person_ref=f"{agency}-ref",
        allow=True,
        tier=tier,
        permitted_fields=[f"{agency}.visits"],
        withheld=[],
        obligations=[],
        reasons=[],
        agreement=None,
        retention_days=retention_days,
    )


def _answer(agency: str, *, facts: int) -> CallOutcome[FetchResponse]:
    released = [ReleasedFact(field=f"{agency}.visits", value=3, as_of=ASKED)] * facts
    message = FetchResponse(
        query_id="q",
        exchange_id=f"x-{agency}",
        agency_id=agency,
        decision_digest="sha256:d",
        status=FetchStatus.OK,
        persons=[PersonFacts(ref=f"{agency}-ref", facts=released)],
    )
    return CallOutcome(agency, CallStatus.OK, 0.1, message)


def _view(
    retention: dict[str, int], released: dict[str, int], known_only: frozenset[str] = frozenset()
) -> FamilyView:
    """The view of one subject held by every agency of ``retention`` (its days), each
    releasing as many facts as ``released`` says; those of ``known_only`` may say only
    that they know the person."""
    decision = FamilyDecision(
        submit=SubmitDecision(allow=True, reasons=[], obligations=[]),
        exchanges=[
            _exchange(agency, days, "known_to_service" if agency in known_only else "full")
            for agency, days in retention.items()
        ],
        bundle_digest="sha256:d",
        engine="test",
    )
    records = [LinkRecord(agency, f"{agency}-ref", {}, is_subject=True) for agency in retention]
    builder = ViewBuilder("q", REQUEST, ASKED, "sha256:d")
    builder.members(Linkage([Member("m1", records, is_subject=True, confidence=1.0)], []))
    for agency, facts in released.items():
        builder.add_facts(agency, _answer(agency, facts=facts), decision)
    for exchange in decision.exchanges:
        builder.add_decision(exchange)
    return builder.build(entries=[1], release_entry=1, checkpoint=None, tree_size=None)


def test_what_was_released_may_be_kept_only_as_long_as_the_shortest_retention_allows() -> None:
    view = _view({"health": 730, "police": 365, "housing": 30}, {"health": 1, "police": 2})
    # Housing released nothing: its shorter retention binds nothing.
    assert view.retention == RetentionView(days=365, keep_until=dt.date(2027, 11, 23))


def test_an_answer_releasing_no_fact_carries_no_retention() -> None:
    view = _view({"health": 730}, {"health": 0})
    assert view.retention is None
    assert view.model_dump(mode="json")["retention"] is None


def test_that_an_agency_knows_the_person_is_kept_no_longer_than_its_retention() -> None:
    # "Known to the police" is itself what the police released about the person.
    view = _view({"health": 730, "police": 90}, {"health": 1}, known_only=frozenset({"police"}))
    assert view.members[0].known_to == ["police"]
    assert view.retention == RetentionView(days=90, keep_until=dt.date(2027, 2, 21))
