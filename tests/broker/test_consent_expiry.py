"""Expiry is read, not recorded: a given consent turns expired when its time passes; a
refusal stands until the person says otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from audit.checkpoint import NoteSigner
from audit.log import DEFAULT_ORIGIN, AuditLog
from audit.search import SearchQuery
from broker.consent import ConsentService, ConsentVocabulary
from broker.consent.schemas import ConsentIn, ConsentTransition, Identifier
from broker.db import Database
from broker.errors import InvalidChange
from broker.identity import Principal, Role
from broker.subjects import SubjectKeys

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CASEWORKER = Principal(subject="u-17", name="Sam Okafor", role=Role.CASEWORKER, agency="council")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[ConsentService, Clock, AuditLog]]:
    clock = Clock()
    db = Database.open(f"sqlite:///{tmp_path / 'broker.db'}")
    log = AuditLog.open(f"sqlite:///{tmp_path / 'audit.db'}", NoteSigner.generate(DEFAULT_ORIGIN))
    vocabulary = ConsentVocabulary(
        purposes=frozenset({"early_help_assessment"}),
        # The caseworker's own agency is registered: no other may record consent.
        agencies=frozenset({"council", "police", "school"}),
        fields=frozenset(),
    )
    service = ConsentService(
        db, log, SubjectKeys(b"k" * 32), vocabulary=lambda: vocabulary, clock=clock
    )
    try:
        yield service, clock, log
    finally:
        log.close()
        db.close()


def test_a_given_consent_reads_expired_after_its_expiry(
    parts: tuple[ConsentService, Clock, AuditLog],
):
    service, clock, log = parts
    recorded = service.record(
        CASEWORKER,
        ConsentIn(
            identifiers=[Identifier(kind="upn", value="B801200005001")],
            purpose="early_help_assessment",
            scope="all",
            channel="in_person",
            expires_at=START + timedelta(days=30),
        ),
    )
    clock.now = START + timedelta(days=29)
    assert service.get(recorded.id).state == "given"
    clock.now = START + timedelta(days=31)
    read = service.get(recorded.id)
    assert read.state == "expired"
    assert [(h.state, h.automatic) for h in read.history] == [("given", False), ("expired", True)]
    assert read.history[1].at == START + timedelta(days=30)
    with pytest.raises(InvalidChange, match="expired on 2026-03-31T09:00:00Z; record a new"):
        service.transition(CASEWORKER, recorded.id, ConsentTransition(state="withdrawn"))
    # Reading an expired consent records nothing: expiry is no one's act.
    assert len(log.search(SearchQuery(kind="consent_change")).entries) == 1


@pytest.mark.parametrize(("first", "then"), [("refused", "given"), ("not_sought", "refused")])
def test_a_record_past_its_expiry_takes_no_new_answer_whatever_it_says(
    parts: tuple[ConsentService, Clock, AuditLog], first: str, then: str
):
    service, clock, log = parts
    recorded = service.record(
        CASEWORKER,
        ConsentIn(
            identifiers=[Identifier(kind="upn", value="B801200005001")],
            purpose="early_help_assessment",
            scope="all",
            state=first,
            channel="phone",
            note="Not asked yet: visit booked",
            expires_at=START + timedelta(days=30),
        ),
    )
    clock.now = START + timedelta(days=31)
    with pytest.raises(InvalidChange) as refused:
        service.transition(
            CASEWORKER, recorded.id, ConsentTransition(state=then, note="Mother now agrees")
        )
    assert (refused.value.status, refused.value.code) == (422, "invalid-change")
    assert refused.value.detail == (
        "this record expired on 2026-03-31T09:00:00Z; record a new consent"
    )
    assert [h.state for h in service.get(recorded.id).history] == [first]
    assert len(log.search(SearchQuery(kind="consent_change")).entries) == 1


def test_consents_for_answers_as_of_the_time_asked(
    parts: tuple[ConsentService, Clock, AuditLog],
):
    service, clock, _ = parts
    person = [Identifier(kind="nhs_number", value="9434765919")]
    first = service.record(
        CASEWORKER,
        ConsentIn(
            identifiers=person, purpose="early_help_assessment", scope=["police"], channel="phone"
        ),
    )
    clock.now = START + timedelta(days=2)
    service.transition(CASEWORKER, first.id, ConsentTransition(state="withdrawn"))
    key = service.person_keys(person)[0]
    at_day_one = service.consents_for([key], "early_help_assessment", START + timedelta(days=1))
    at_day_three = service.consents_for([key], "early_help_assessment", START + timedelta(days=3))
    before_anything = service.consents_for(
        [key], "early_help_assessment", START - timedelta(days=1)
    )
    assert [r.state for r in at_day_one[key]] == ["given"]
    assert [r.state for r in at_day_three[key]] == ["withdrawn"]
    assert before_anything == {}


def test_not_sought_does_not_hide_what_the_person_said(
    parts: tuple[ConsentService, Clock, AuditLog],
):
    service, clock, _ = parts
    person = [Identifier(kind="upn", value="B801200005001")]
    service.record(
        CASEWORKER,
        ConsentIn(
            identifiers=person, purpose="early_help_assessment", scope=["police"], channel="paper"
        ),
    )
    clock.now = START + timedelta(days=1)
    service.record(
        CASEWORKER,
        ConsentIn(
            identifiers=person,
            purpose="early_help_assessment",
            scope=["police", "school"],
            state="not_sought",
            channel="in_person",
            note="Not asked yet: visit booked",
        ),
    )
    key = service.person_keys(person)[0]
    found = service.consents_for([key], "early_help_assessment", START + timedelta(days=2))
    assert [(r.agency_id, r.state) for r in found[key]] == [
        ("police", "given"),
        ("school", "not_sought"),
    ]


def test_a_refusal_is_not_lifted_by_its_expiry_but_by_a_newer_consent(
    parts: tuple[ConsentService, Clock, AuditLog],
):
    service, clock, _ = parts
    person = [Identifier(kind="upn", value="B801200005001")]
    refusal = service.record(
        CASEWORKER,
        ConsentIn(
            identifiers=person,
            purpose="early_help_assessment",
            scope=["police"],
            state="refused",
            channel="phone",
            expires_at=START + timedelta(days=30),
        ),
    )
    key = service.person_keys(person)[0]
    clock.now = START + timedelta(days=31)
    assert service.get(refusal.id).state == "refused"
    found = service.consents_for([key], "early_help_assessment", clock.now)
    assert [(r.agency_id, r.state) for r in found[key]] == [("police", "refused")]
    service.record(
        CASEWORKER,
        ConsentIn(
            identifiers=person, purpose="early_help_assessment", scope=["police"], channel="paper"
        ),
    )
    clock.now = START + timedelta(days=32)
    found = service.consents_for([key], "early_help_assessment", clock.now)
    assert [(r.agency_id, r.state) for r in found[key]] == [("police", "given")]


@pytest.mark.parametrize("written", [1893456000, "1893456000", "20300101"])
def test_an_expiry_written_as_a_number_is_refused_not_read_as_seconds(written: object) -> None:
    with pytest.raises(ValidationError) as refused:
        ConsentIn(
            identifiers=[Identifier(kind="upn", value="B801200005001")],
            purpose="early_help_assessment",
            scope="all",
            channel="phone",
            expires_at=written,  # type: ignore[arg-type]
        )
    (error,) = refused.value.errors()
    assert error["loc"] == ("expires_at",)
    assert error["msg"].endswith("must be a time such as 2026-01-01T00:00:00Z, not a number")
