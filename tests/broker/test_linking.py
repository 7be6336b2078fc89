"""Joining people across agencies from linkage tokens only."""

from __future__ import annotations

import datetime as dt
import os
import threading
from contextlib import closing

import sqlalchemy as sa

from broker.db import Database
from broker.federation.linking import LinkDecisions, LinkRecord, compare_tokens, link_records
from broker.queries.render import link_id
from broker.queries.store import QueryStore
from connectors.matching.tokens import LinkageKey, linkage_tokens
from tests.broker.foundation_kit import reset_postgres

KEY = LinkageKey("k1", b"l" * 32)


def tokens(
    given: str,
    family: str,
    dob: dt.date | None,
    *,
    sex: str | None = None,
    postcode: str | None = "NB1 4QT",
    **ids: str,
) -> dict[str, list[str]]:
    return linkage_tokens(
        KEY,
        given_name=given,
        family_name=family,
        date_of_birth=dob,
        postcode=postcode,
        sex=sex,
        identifiers=ids,
    )


AMELIA = dt.date(2014, 5, 2)
JOSHUA = dt.date(2011, 9, 17)
MOTHER = dt.date(1986, 1, 30)


def test_the_same_person_with_a_nickname_and_a_moved_address_links() -> None:
    score = compare_tokens(
        tokens("Joshua", "Okafor", JOSHUA, sex="M"),
        tokens("Josh", "Okafor", JOSHUA, sex="M", postcode="NB7 2LL"),
    )
    assert score.probability > 0.99
    assert score.levels["given_name"] == "nickname"


def test_a_day_month_swap_with_a_typo_still_links() -> None:
    swapped = dt.date(2014, 2, 5)
    score = compare_tokens(tokens("Amelia", "Okafor", AMELIA), tokens("Amilia", "Okafor", swapped))
    assert score.levels["date_of_birth"] == "day_month_swapped"
    assert score.probability > 0.9


def test_siblings_sharing_surname_and_address_do_not_link() -> None:
    score = compare_tokens(
        tokens("Amelia", "Okafor", AMELIA, sex="F"), tokens("Joshua", "Okafor", JOSHUA, sex="M")
    )
    assert score.probability < 0.01


def test_twins_with_different_names_are_never_joined_automatically() -> None:
    score = compare_tokens(
        tokens("Amelia", "Okafor", AMELIA, sex="F"), tokens("Grace", "Okafor", AMELIA, sex="F")
    )
    assert score.probability < 0.95


def test_an_identifier_that_disagrees_stops_an_automatic_join() -> None:
    """Same name and birth date but another NHS number: a person must look at it."""
    left = LinkRecord("health", "h-1", tokens("Amelia", "Okafor", AMELIA, nhs_number="9434765919"))
    right = LinkRecord("school", "s-1", tokens("Amelia", "Okafor", AMELIA, nhs_number="4010232137"))
    score = compare_tokens(left.tokens, right.tokens)
    assert score.levels["nhs_number"] == "disagree"
    linkage = link_records([left, right])
    assert len(linkage.members) == 2
    assert [link.left for link in linkage.uncertain] == ["health:h-1"]


def _family(agency: str, prefix: str, *, josh: str = "Joshua") -> list[LinkRecord]:
    return [
        LinkRecord(
            agency, f"{prefix}-1", tokens("Amelia", "Okafor", AMELIA, sex="F"), True, None, 0.99
        ),
        LinkRecord(
            agency, f"{prefix}-2", tokens(josh, "Okafor", JOSHUA, sex="M"), False, "sibling"
        ),
        LinkRecord(
            agency, f"{prefix}-3", tokens("Ngozi", "Okafor", MOTHER, sex="F"), False, "mother"
        ),
    ]


def test_a_family_seen_by_three_agencies_becomes_three_members() -> None:
    records = _family("school", "s") + _family("health", "h", josh="Josh") + _family("police", "p")
    linkage = link_records(records)
    assert len(linkage.members) == 3
    subject = linkage.members[0]
    assert subject.is_subject
    assert subject.keys == {"school:s-1", "health:h-1", "police:p-1"}
    others = {frozenset(m.keys) for m in linkage.members[1:]}
    assert frozenset({"school:s-2", "health:h-2", "police:p-2"}) in others
    assert all(member.confidence >= 0.95 for member in linkage.members)
    assert linkage.uncertain == []


def test_an_uncertain_pair_is_left_for_the_caseworker_and_their_decision_sticks() -> None:
    school = LinkRecord("school", "s-9", tokens("Grace", "Okafor", AMELIA, sex="F"))
    health = LinkRecord("health", "h-9", tokens("Gracie", "Okafor", dt.date(2014, 6, 2)))
    linkage = link_records([school, health])
    assert len(linkage.members) == 2
    assert len(linkage.uncertain) == 1
    pair = frozenset({school.key, health.key})
    confirmed = link_records([school, health], decisions=LinkDecisions(confirmed=frozenset({pair})))
    assert len(confirmed.members) == 1
    assert confirmed.members[0].links[0].decided_by == "caseworker"
    rejected = link_records([school, health], decisions=LinkDecisions(rejected=frozenset({pair})))
    assert len(rejected.members) == 2
    assert rejected.uncertain == []


def test_one_agency_never_contributes_two_records_to_one_member() -> None:
    first = LinkRecord("school", "s-1", tokens("Amelia", "Okafor", AMELIA))
    duplicate = LinkRecord("school", "s-2", tokens("Amelia", "Okafor", AMELIA))
    other = LinkRecord("health", "h-1", tokens("Amelia", "Okafor", AMELIA))
    linkage = link_records([first, duplicate, other])
    for member in linkage.members:
        agencies = [r.agency_id for r in member.records]
        assert len(agencies) == len(set(agencies))


def test_two_caseworkers_deciding_one_link_at_once_both_have_their_decision_recorded(
    postgres_url: str,
) -> None:
    """On PostgreSQL, where two decisions can overlap: the later one stands, and neither
    caseworker is told of a conflict (their decision is already in the audit log)."""
    reset_postgres(postgres_url)
    left, right = "school:s-9", "health:h-9"
    outcome: list[BaseException | None] = []
    with closing(Database.open(postgres_url)) as database:
        store = QueryStore(database, os.urandom(32))

        def second() -> None:
            try:
                store.decide(left, right, "reject", "dev:council:ann.lee")
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - the test reads it below
                outcome.append(exc)

        # The first decision, not yet committed when the second one's arrives.
        with database.engine.connect() as first, first.begin():
            first.execute(
                sa.text(
                    "INSERT INTO broker_link_decisions"
                    " (link_id, left_key, right_key, decision, decided_by, decided_at)"
                    " VALUES (:link, :left, :right, 'confirm', 'dev:council:sam', :now)"
                ),
                {
                    "link": link_id(left, right),
                    "left": left,
                    "right": right,
                    "now": dt.datetime.now(dt.UTC),
                },
            )
            thread = threading.Thread(target=second)
            thread.start()
            thread.join(0.5)
        thread.join(10)
        confirmed, rejected = store.decisions_for([left])
    assert outcome == [None]
    assert (confirmed, rejected) == (set(), {frozenset({left, right})})
