"""The family query end to end: six real connectors on the demo town, a real broker.

One region serves the whole module (building it takes seconds); tests that change it
(consent, agreements, a broken connector) put it back as they found it.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit.merkle import verify_inclusion
from audit.search import SearchQuery
from broker.federation.client import ConnectorClient, ConnectorEndpoint
from broker.identity.principal import Role
from connectors.protocol import KeyPair, Signer
from connectors.protocol.keys import load_private_key
from connectors.protocol.messages import FetchRequest, MatchRequest, Subject
from policies.settings import DEFAULT_BUNDLE_DIR
from tests.broker.town_kit import Region, known_to, region, subject_of

pytestmark = pytest.mark.anyio
# Generous enough for a shared two-core machine running the whole suite.
AGENCY_TIMEOUT = 3.0
DEADLINE = 6.0


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def town(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Region]:
    root: Path = tmp_path_factory.mktemp("region")
    async with region(
        root, 600, agency_timeout_seconds=AGENCY_TIMEOUT, query_deadline_seconds=DEADLINE
    ) as r:
        yield r


def _family_child(town: Region, nth: int = 0) -> dict[str, Any]:
    """The ``nth`` child known to the school, health and housing, with an NHS number.

    Tests that change what is recorded about a person (consent) take their own child.
    """
    children = [
        person
        for person in known_to(town.truth, 4)
        if {"education", "health", "housing"} <= set(person["records"])
        and person.get("nhs_number")
        and person["role"] == "child"
    ]
    assert len(children) > nth, "the town has too few children known to four agencies"
    return children[nth]


def _query(person: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": subject_of(person),
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


async def _ask(town: Region, body: dict[str, Any], **headers: Any) -> dict[str, Any]:
    response = await town.client.post(
        "/v1/family-queries", json=body, headers=town.headers(**headers)
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _status(view: dict[str, Any], agency: str) -> dict[str, Any]:
    return next(a for a in view["agencies"] if a["agency_id"] == agency)


def _subject(view: dict[str, Any]) -> dict[str, Any]:
    """The subject's member, or an empty one when no agency was asked or matched."""
    found = [m for m in view["members"] if m["is_subject"]]
    return found[0] if found else {"facts": {}, "records": [], "withheld": []}


async def test_a_query_joins_a_family_across_agencies(town: Region) -> None:
    person = _family_child(town)
    view = await _ask(town, _query(person))
    assert view["status"] == "complete"
    subject = _subject(view)
    agencies = {record["agency_id"] for record in subject["records"]}
    assert {"education", "health", "housing"} <= agencies
    assert {"education", "housing"} <= set(subject["facts"])
    fact = subject["facts"]["education"][0]
    assert fact["source_agency"] == "education"
    assert fact["as_of"]
    household = [m for m in view["members"] if not m["is_subject"]]
    truth_household = [
        p
        for p in town.truth["people"]
        if p["household_id"] == person["household_id"] and p is not person and p["records"]
    ]
    assert len(household) >= min(1, len(truth_household))
    assert all(m["confidence"] >= 0.95 for m in view["members"])
    assert [n["code"] for n in view["needs"]][:2] == ["education", "early_years"]

    entries = town.entries(query_id=view["query_id"])
    kinds = [e.kind for e in entries]
    asked = [a for a in view["agencies"] if a["status"] != "withheld" or a["elapsed_ms"]]
    assert kinds.count("query_submitted") == 1
    assert kinds.count("match") == len(asked)
    assert kinds.count("release") == 1
    # The entries are queued as the query goes and awaited together before the release:
    # the log still holds them in the order of the query's steps.
    step = {"query_submitted": 0, "match": 1, "fetch": 2, "release": 3}
    assert [step[k] for k in kinds] == sorted(step[k] for k in kinds)
    assert "fetch" in kinds
    assert sorted(e.index for e in entries) == view["receipt"]["entries"]
    for entry in entries:
        assert person["given_name"] not in json.dumps(dict(entry.fields))


def _retention_days(purpose: str) -> int:
    """How long the shipped catalogue lets a purpose's answers be kept, in days."""
    purposes = json.loads((DEFAULT_BUNDLE_DIR / "data/catalogue/purposes.json").read_text())
    return int(purposes[purpose]["retention_days"])


async def test_an_answer_says_until_when_what_it_released_may_be_kept(town: Region) -> None:
    view = await _ask(town, _query(_family_child(town)))
    assert _subject(view)["facts"]
    days = _retention_days("child_in_need_assessment")
    asked = dt.datetime.fromisoformat(view["created_at"]).astimezone(dt.UTC).date()
    assert view["retention"] == {
        "days": days,
        "keep_until": (asked + dt.timedelta(days=days)).isoformat(),
    }


async def test_an_answer_that_released_nothing_says_nothing_of_keeping_it(town: Region) -> None:
    refused = await _ask(town, _query(_family_child(town), purpose="curiosity"))
    assert refused["status"] == "refused"
    assert refused["retention"] is None
    nobody = {
        "given_name": "Quillon",
        "family_name": "Zaharova-Pettigrew",
        "date_of_birth": "1931-02-03",
        "sex": "F",
        "postcode": "ZE3 9XX",
    }
    unknown = await _ask(town, _query(_family_child(town), subject=nobody))
    assert unknown["status"] != "refused"
    assert all(not member["facts"] for member in unknown["members"])
    assert unknown["retention"] is None


async def test_the_receipt_proves_every_entry(town: Region) -> None:
    view = await _ask(town, _query(_family_child(town)))
    response = await town.client.get(view["receipt"]["proofs"], headers=town.headers())
    assert response.status_code == 200, response.text
    receipt = response.json()
    note = receipt["checkpoint"].split("\n")
    root = base64.b64decode(note[2])
    assert int(note[1]) == receipt["tree_size"]
    for entry in receipt["entries"]:
        verify_inclusion(
            bytes.fromhex(entry["leaf_hash"]),
            entry["index"],
            receipt["tree_size"],
            [bytes.fromhex(h) for h in entry["inclusion_proof"]],
            root,
        )
    assert sorted(e["index"] for e in receipt["entries"]) == view["receipt"]["entries"]


async def test_a_query_is_in_its_caseworkers_history_when_answered(town: Region) -> None:
    view = await _ask(town, _query(_family_child(town)))
    mine = await town.client.get("/v1/family-queries", headers=town.headers())
    assert mine.status_code == 200, mine.text
    kept = {q["query_id"]: q for q in mine.json()}
    assert kept[view["query_id"]]["entries"] == view["receipt"]["entries"]
    assert kept[view["query_id"]]["release_entry"] == view["receipt"]["release_entry"]
    theirs = await town.client.get(
        "/v1/family-queries", headers=town.headers(name="Another Caseworker")
    )
    assert view["query_id"] not in {q["query_id"] for q in theirs.json()}


async def test_an_ig_officer_sees_whose_query_each_one_is_and_pages_back(town: Region) -> None:
    first = await _ask(town, _query(_family_child(town)))
    second = await _ask(town, _query(_family_child(town)), name="Another Caseworker")
    officer = town.headers(Role.IG_OFFICER, job_role=None, name="Ivy Officer")
    newest = await town.client.get("/v1/family-queries?limit=1", headers=officer)
    assert newest.status_code == 200, newest.text
    (shown,) = newest.json()
    assert shown["query_id"] == second["query_id"]
    assert (shown["actor"], shown["actor_agency"]) == (
        "dev:council:another.caseworker",
        "council",
    )
    older = await town.client.get(
        "/v1/family-queries",
        params={"limit": 1, "before": shown["created_at"]},
        headers=officer,
    )
    assert older.status_code == 200, older.text
    assert [q["query_id"] for q in older.json()] == [first["query_id"]]
    assert older.json()[0]["actor"] == "dev:council:sam.caseworker"


async def test_an_answer_sent_with_a_key_can_be_read_again_by_its_caseworker_only(
    town: Region,
) -> None:
    body = _query(_family_child(town))
    sent = await town.client.post(
        "/v1/family-queries",
        json=body,
        headers={**town.headers(), "Idempotency-Key": "read-again-1"},
    )
    assert sent.status_code == 200, sent.text
    view = sent.json()
    address = f"/v1/family-queries/{view['query_id']}"
    again = await town.client.get(address, headers=town.headers())
    assert again.status_code == 200, again.text
    assert again.json() == view
    assert again.json()["retention"]["days"] == _retention_days("child_in_need_assessment")
    theirs = await town.client.get(address, headers=town.headers(name="Another Caseworker"))
    assert theirs.status_code == 403
    officer = town.headers(Role.IG_OFFICER, job_role=None, name="Ivy Officer")
    assert (await town.client.get(address, headers=officer)).status_code == 403
    unkept = await _ask(town, body)
    gone = await town.client.get(f"/v1/family-queries/{unkept['query_id']}", headers=town.headers())
    assert gone.status_code == 404
    assert gone.json()["detail"] == (
        f"the answer of query {unkept['query_id']!r} is not kept: an answer is kept for"
        " 10 minutes, for a query sent with an Idempotency-Key; run the query again"
    )


async def test_another_caseworker_cannot_read_the_receipt(town: Region) -> None:
    view = await _ask(town, _query(_family_child(town)))
    response = await town.client.get(
        view["receipt"]["proofs"], headers=town.headers(name="Another Caseworker")
    )
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_job_the_purpose_does_not_allow_is_refused_and_audited(town: Region) -> None:
    body = _query(_family_child(town), purpose="child_protection_enquiry", gateway="ca1989_s47")
    view = await _ask(town, body, job_role="early_help_worker")
    assert view["status"] == "refused"
    assert "role_not_permitted" in [r["code"] for r in view["refusal"]]
    assert view["members"] == []
    entries = town.entries(query_id=view["query_id"])
    assert [e.kind for e in entries] == ["refusal", "release"]
    assert entries[0].fields["decision"] == "deny"


async def test_an_exchange_digest_does_not_confirm_a_guess_of_who_was_asked_about(
    town: Region,
) -> None:
    # Whoever holds the log's leaves (an exported bundle, an agency's own log) but not the
    # exchanges must not be able to test a guess of the person: the match request is the
    # person's details and what the leaf already says.
    person = _family_child(town)
    body = _query(person)
    view = await _ask(town, body)
    subject = subject_of(person)
    guess = MatchRequest(
        query_id=view["query_id"],
        requester_agency="council",
        purpose=body["purpose"],
        subject=Subject(
            given_name=subject["given_name"],
            family_name=subject["family_name"],
            date_of_birth=subject["date_of_birth"],
            sex=subject["sex"],
            postcode=subject["postcode"],
            identifiers={k: v.replace(" ", "") for k, v in subject["identifiers"].items()},
        ),
    )
    guessed = Signer(KeyPair.generate(), "broker").seal(guess, "any").header["body_digest"]
    matches = [e for e in town.entries(query_id=view["query_id"]) if e.kind == "match"]
    assert len(matches) == len(town.connectors)
    for entry in matches:
        digest = entry.fields["request_digest"]
        assert digest.startswith("sha256:")
        assert digest != guessed
        # The agency's own entry for the exchange holds the same digest: the two logs
        # can still be laid side by side.
        agency = entry.fields["counterparty_agency"]
        local = town.connectors[agency].audit.log.search(
            SearchQuery(query_id=view["query_id"], kind="match", limit=5)
        )
        assert [e.fields["request_digest"] for e in local.entries] == [digest]


async def test_a_caseworker_of_an_agency_not_registered_is_refused_before_anything_is_asked(
    town: Region,
) -> None:
    before = len(town.entries())
    response = await town.client.post(
        "/v1/family-queries",
        json=_query(_family_child(town)),
        headers=town.headers(agency="nowhere"),
    )
    assert response.status_code == 403
    problem = response.json()
    assert problem["type"] == "urn:junction:problem:forbidden"
    assert problem["detail"].startswith("your agency 'nowhere' is not registered in Junction")
    # No agency was asked (each exchange would have its entry), and the attempt is on
    # record under the person asked about, for the IG officer.
    [refusal] = town.entries()[before:]
    assert refusal.kind == "refusal"
    assert refusal.fields["decision"] == "deny"
    assert refusal.fields["reasons"] == ["agency_not_registered"]
    assert refusal.fields["actor_agency"] == "nowhere"
    assert refusal.fields["subjects"]
    assert [e.index for e in town.entries(subject=refusal.fields["subjects"][0])][-1] == (
        refusal.index
    )


async def test_a_missing_case_reference_is_refused(town: Region) -> None:
    view = await _ask(town, _query(_family_child(town), case_reference=None))
    assert view["status"] == "refused"
    assert [r["code"] for r in view["refusal"]] == ["case_reference_required"]


@pytest.mark.parametrize(
    ("member", "value", "says"),
    [
        ("date_of_birth", "2999-01-01", "cannot be in the future"),
        ("date_of_birth", "1500-01-01", "before 1880 is not possible"),
        ("postcode", "!!!!", "enter a UK postcode such as NB1 4QT"),
        ("postcode", "12345", "enter a UK postcode such as NB1 4QT"),
    ],
)
async def test_a_birth_date_or_postcode_no_one_could_have_is_refused_before_any_agency_is_asked(
    town: Region, member: str, value: str, says: str
) -> None:
    person = _family_child(town)
    before = town.foundation.audit.store.size()
    body = _query(person, subject={**subject_of(person), member: value})
    response = await town.client.post("/v1/family-queries", json=body, headers=town.headers())
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("invalid-request")
    [error] = problem["errors"]
    assert error["location"] == f"subject.{member}"
    assert says in error["message"]
    assert town.foundation.audit.store.size() == before, "nothing was asked, so nothing is logged"


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        (
            {"conditions": ["art9_2_g_para81"]},
            "condition 'art9_2_g_para81' is not in the policy catalogue; did you mean"
            " 'art9_2_g_para18'?",
        ),
        (
            {"consent_not_sought_reason": "would_prejudice"},
            "reason 'would_prejudice' is not in the policy catalogue; did you mean"
            " 'would_prejudice_protection'?",
        ),
        (
            {"fields": ["education.attendance_rate", "education.attendence"]},
            "field 'education.attendence' is not offered by any agency taking part; did you"
            " mean 'education.attendance_rate'?",
        ),
    ],
)
async def test_a_misspelt_condition_or_reason_is_refused_naming_it_before_any_agency_is_asked(
    town: Region, changes: dict[str, Any], says: str
) -> None:
    before = town.foundation.audit.store.size()
    body = _query(_family_child(town), **changes)
    response = await town.client.post("/v1/family-queries", json=body, headers=town.headers())
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["type"].endswith("invalid-change")
    assert says in problem["detail"]
    assert town.foundation.audit.store.size() == before, "nothing was asked, so nothing is logged"


@pytest.mark.parametrize(
    ("changes", "location"),
    [
        ({"justification": "Referral from school\x07 about attendance."}, "justification"),
        ({"case_reference": "CIN-2026\x1b[2J"}, "case_reference"),
        ({"override_reason": "Person refused;\x08 gateway applies."}, "override_reason"),
        (
            {
                "purpose": "child_protection_enquiry",
                "gateway": "ca1989_s47",
                "break_glass": {
                    "reason_code": "immediate_risk_of_harm",
                    "text": "Child reported missing\x0c overnight.",
                },
            },
            "break_glass.text",
        ),
    ],
)
async def test_text_holding_control_characters_is_refused_before_anything_is_logged(
    town: Region, changes: dict[str, Any], location: str
) -> None:
    """What an IG officer reads later (the justification, the emergency) is as typed:
    a control character is refused, as the query form takes it out."""
    before = town.foundation.audit.store.size()
    body = _query(_family_child(town), **changes)
    response = await town.client.post(
        "/v1/family-queries", json=body, headers=town.headers(job_role="duty_social_worker")
    )
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["location"] == location
    assert "control character" in error["message"]
    assert town.foundation.audit.store.size() == before


async def test_line_breaks_and_tabs_in_a_justification_are_kept(town: Region) -> None:
    text = "Referral from school:\n\tattendance below 80%.\r\nWelfare concerns."
    view = await _ask(town, _query(_family_child(town), justification=text))
    (submitted,) = town.entries(query_id=view["query_id"], kind="query_submitted")
    assert submitted.private["justification"] == text


async def test_an_empty_list_of_fields_is_refused_before_any_agency_is_asked(
    town: Region,
) -> None:
    before = town.foundation.audit.store.size()
    body = _query(_family_child(town), fields=[])
    response = await town.client.post("/v1/family-queries", json=body, headers=town.headers())
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["location"] == "fields"
    assert town.foundation.audit.store.size() == before


async def test_a_field_that_is_no_item_name_is_refused_without_repeating_it(
    town: Region,
) -> None:
    before = town.foundation.audit.store.size()
    body = _query(_family_child(town), fields=["education.attendance_rate", "<b>Bad</b> name"])
    response = await town.client.post("/v1/family-queries", json=body, headers=town.headers())
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {
            "location": "fields.1",
            "message": "not an item name: lower-case words joined by '.' and '_',"
            " such as education.attendance_rate",
        }
    ]
    assert "Bad" not in response.text
    assert town.foundation.audit.store.size() == before


async def test_a_value_of_the_wrong_form_is_refused_in_words_not_a_pattern(
    town: Region,
) -> None:
    body = _query(_family_child(town), purpose="Early Help")
    headers = {**town.headers(), "Idempotency-Key": "form 12"}
    response = await town.client.post("/v1/family-queries", json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {
            "location": "header.idempotency-key",
            "message": "use printable ASCII characters without spaces, such as a UUID",
        },
        {
            "location": "purpose",
            "message": "use 2 to 64 lower-case letters, digits or '_', starting with a letter,"
            " such as 'early_help'",
        },
    ]


async def test_an_unknown_purpose_is_refused(town: Region) -> None:
    view = await _ask(town, _query(_family_child(town), purpose="curiosity"))
    assert view["status"] == "refused"
    assert "unknown_purpose" in [r["code"] for r in view["refusal"]]


async def test_a_suspended_agreement_withholds_that_agency_saying_so(town: Region) -> None:
    admin = town.headers(Role.ADMIN, job_role=None, agency="broker")
    current = (await town.client.get("/v1/agreements/dsa-council-housing", headers=admin)).json()
    change = {k: current[k] for k in ("parties", "purposes", "legal_bases", "fields", "valid_from")}
    suspended = await town.client.put(
        "/v1/agreements/dsa-council-housing", json={**change, "status": "suspended"}, headers=admin
    )
    assert suspended.status_code == 200, suspended.text
    try:
        view = await _ask(town, _query(_family_child(town)))
        housing = _status(view, "housing")
        assert housing["status"] == "withheld"
        assert housing["reasons"] == [
            {
                "code": "agreement_suspended",
                "text": "The data sharing agreement between the two agencies for this purpose "
                "and legal basis is suspended; nothing is shared until it is resumed.",
            }
        ]
        assert _status(view, "education")["status"] == "ok"
        assert "housing" not in _subject(view)["facts"]
    finally:
        restored = await town.client.put(
            "/v1/agreements/dsa-council-housing", json={**change, "status": "active"}, headers=admin
        )
        assert restored.status_code == 200


async def _record_consent(town: Region, person: dict[str, Any], purpose: str) -> str:
    response = await town.client.post(
        "/v1/consents",
        json={
            "identifiers": [{"kind": "nhs_number", "value": person["nhs_number"]}],
            "purpose": purpose,
            "scope": "all",
            "given_by": "parent",
            "channel": "paper",
            "evidence_reference": "Form EH-1",
        },
        headers=town.headers(),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _withdraw(town: Region, consent_id: str) -> None:
    response = await town.client.post(
        f"/v1/consents/{consent_id}/transitions",
        json={"state": "withdrawn", "note": "Mother withdrew at the front desk"},
        headers=town.headers(),
    )
    assert response.status_code == 200, response.text


async def test_withdrawing_consent_changes_the_next_answer(town: Region) -> None:
    person = _family_child(town, 1)
    body = _query(
        person,
        purpose="early_help_assessment",
        legal_basis="consent",
        gateway=None,
        case_reference=None,
        consent_not_sought_reason=None,
    )
    before = await _ask(town, body, job_role="early_help_worker")
    assert not _subject(before)["facts"]
    assert {a["status"] for a in before["agencies"]} == {"withheld"}

    consent_id = await _record_consent(town, person, "early_help_assessment")
    given = await _ask(town, body, job_role="early_help_worker")
    assert given["status"] != "refused"
    assert _subject(given)["facts"]

    await _withdraw(town, consent_id)
    withdrawn = await _ask(town, body, job_role="early_help_worker")
    facts = _subject(withdrawn)["facts"] if withdrawn["members"] else {}
    assert facts == {}
    codes = {r["code"] for r in withdrawn["refusal"]} | {
        r["code"] for a in withdrawn["agencies"] for r in a["reasons"]
    }
    assert "consent_withdrawn" in codes
    consent_entries = town.entries(kind="consent_change")
    assert len(consent_entries) >= 2


async def test_a_gateway_overrides_withdrawn_consent_only_with_a_reason(town: Region) -> None:
    person = _family_child(town, 2)
    consent_id = await _record_consent(town, person, "child_in_need_assessment")
    await _withdraw(town, consent_id)
    blocked = await _ask(town, _query(person))
    assert not _subject(blocked)["facts"] if blocked["members"] else True
    codes = {r["code"] for a in blocked["agencies"] for r in a["reasons"]}
    assert "consent_withdrawn_no_override" in codes

    overridden = await _ask(
        town, _query(person, override_reason="Risk of significant harm; s17 assessment.")
    )
    assert _subject(overridden)["facts"]
    assert "record_consent_override" in [o["code"] for o in overridden["obligations"]]


async def test_consent_recorded_by_nhs_number_binds_a_query_by_name_and_birth_date(
    town: Region,
) -> None:
    """The caseworker asks without the NHS number the withdrawal was recorded under; the
    agencies that hold the child send the consent references of the identifiers they
    hold, and the withdrawal is found through them."""
    person = _family_child(town, 4)
    body = _query(person, subject=subject_of(person, identifiers=False))
    assert "identifiers" not in body["subject"]
    before = _subject(await _ask(town, body))
    agencies = {record["agency_id"] for record in before["records"]}
    assert {"education", "health"} <= set(before["facts"])

    consent_id = await _record_consent(town, person, "child_in_need_assessment")
    await _withdraw(town, consent_id)
    after = _subject(await _ask(town, body))

    assert after["facts"] == {}
    withheld = {w["agency_id"]: w["code"] for w in after["withheld"]}
    assert withheld == dict.fromkeys(agencies, "consent_withdrawn_no_override")


@contextmanager
def _reroute(town: Region, agency: str, transport: httpx.AsyncBaseTransport) -> Iterator[None]:
    netloc = town.netloc(agency)
    original = town.transport.routes[netloc]
    town.transport.routes[netloc] = transport
    try:
        yield
    finally:
        town.transport.routes[netloc] = original


class _Slow(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, delay: float) -> None:
        self.inner, self.delay = inner, delay

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(self.delay)
        return await self.inner.handle_async_request(request)


class _Rewriting(httpx.AsyncBaseTransport):
    """Lets the real connector answer fetches, then changes the answer on the way back."""

    def __init__(self, inner: httpx.AsyncBaseTransport, key: KeyPair | None, agency: str) -> None:
        self.inner, self.key, self.agency = inner, key, agency

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path != "/v1/fetch":
            return response
        await response.aread()
        envelope = json.loads(response.content)
        for person in envelope["body"]["persons"]:
            person["facts"].append(
                {
                    "field": f"{self.agency}.secret_notes",
                    "value": "x",
                    "as_of": "2026-01-01T00:00:00Z",
                }
            )
        if self.key is None:  # a forger without the agency's key
            content = json.dumps(envelope).encode()
        else:  # the agency itself, sending more than it was asked
            from connectors.protocol.messages import FetchResponse

            message = FetchResponse.model_validate(envelope["body"])
            content = Signer(self.key, self.agency).seal(message, "broker").to_bytes()
        return httpx.Response(200, content=content, headers={"content-type": "application/json"})


async def test_a_connector_that_is_down_is_reported_and_the_rest_answer(town: Region) -> None:
    town.transport.down.add(town.netloc("health"))
    try:
        view = await _ask(town, _query(_family_child(town)))
    finally:
        town.transport.down.discard(town.netloc("health"))
    assert _status(view, "health")["status"] == "error"
    assert "connect" in _status(view, "health")["detail"]
    assert _status(view, "education")["status"] == "ok"
    assert view["status"] == "partial"


async def test_a_need_an_agency_that_is_down_bears_on_is_unknown_not_unmet(town: Region) -> None:
    """Social care is down: whether the children are safe cannot be judged 'not met' from
    the police's answer alone (no missing episode), nor any other need social care bears on."""
    children = [
        person
        for person in known_to(town.truth, 2)
        if "police" in person["records"] and person["role"] == "child"
    ]
    town.transport.down.add(town.netloc("social-care"))
    try:
        views = [await _ask(town, _query(child)) for child in children[:3]]
    finally:
        town.transport.down.discard(town.netloc("social-care"))
    judged = [
        view
        for view in views
        if any("police" in member["facts"] for member in view["members"])
        and not next(n for n in view["needs"] if n["code"] == "children_safe")["evidence"]
    ]
    assert judged, "none of the children had police facts and no missing episode"
    for view in judged:
        assert _status(view, "social-care")["status"] == "error"
        needs = {need["code"]: need["status"] for need in view["needs"]}
        assert needs["children_safe"] == "unknown"
        assert needs["family_relationships"] == "unknown"
        # A need only the agencies that answered bear on is judged as before.
        assert needs["domestic_abuse"] in ("met", "not_met")


class _Twinned(httpx.AsyncBaseTransport):
    """The agency's match answer with ``scores``: its candidate, and a second record (a
    twin) for each score after the first."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, key: KeyPair, agency: str, *scores: float
    ) -> None:
        self.inner, self.key, self.agency, self.scores = inner, key, agency, scores

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        from connectors.protocol.messages import MatchResponse

        response = await self.inner.handle_async_request(request)
        if request.url.path != "/v1/match":
            return response
        await response.aread()
        answer = MatchResponse.model_validate(json.loads(response.content)["body"])
        first = answer.candidates[0]
        candidates = [
            first.model_copy(update={"ref": f"{first.ref}{'x' * n}", "score": score})
            for n, score in enumerate(self.scores)
        ]
        changed = answer.model_copy(update={"candidates": candidates})
        content = Signer(self.key, self.agency).seal(changed, "broker").to_bytes()
        return httpx.Response(200, content=content, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("scores", "says"),
    [
        (
            (0.99, 0.97),
            "2 of its records could be the subject, so none was taken: add the sex or an"
            " identifier (NHS number, unique pupil number) to tell them apart",
        ),
        (
            (0.62,),
            "none of its records is surely the subject (the best matches 62%), so none was"
            " taken: check the details, or add an identifier (NHS number, unique pupil number)",
        ),
    ],
)
async def test_an_agency_that_cannot_tell_which_record_is_the_subject_says_so(
    town: Region, scores: tuple[float, ...], says: str
) -> None:
    """As for twins asked about by a name both could answer to: nothing is guessed, and
    the answer says why the agency's records are not in it."""
    key = load_private_key(town.layout.keys / "education.key")
    netloc = town.netloc("education")
    inner = town.transport.routes[netloc]
    with _reroute(town, "education", _Twinned(inner, key, "education", *scores)):
        view = await _ask(town, _query(_family_child(town)))
    education = _status(view, "education")
    assert (education["status"], education["detail"]) == ("ambiguous", says)
    assert view["status"] == "partial"
    assert not [r for m in view["members"] for r in m["records"] if r["agency_id"] == "education"]
    (match,) = [
        e
        for e in town.entries(query_id=view["query_id"], kind="match")
        if e.fields["counterparty_agency"] == "education"
    ]
    assert match.fields["reasons"] == ["ambiguous"]


async def test_a_slow_connector_times_out_within_the_deadline(town: Region) -> None:
    netloc = town.netloc("housing")
    with _reroute(town, "housing", _Slow(town.transport.routes[netloc], DEADLINE + 2)):
        started = asyncio.get_running_loop().time()
        view = await _ask(town, _query(_family_child(town)))
        took = asyncio.get_running_loop().time() - started
    assert _status(view, "housing")["status"] == "timeout"
    assert _status(view, "education")["status"] == "ok"
    assert took < DEADLINE + 1.0


async def test_an_extra_field_from_a_connector_is_dropped_and_flagged(town: Region) -> None:
    key = load_private_key(town.layout.keys / "education.key")
    netloc = town.netloc("education")
    with _reroute(town, "education", _Rewriting(town.transport.routes[netloc], key, "education")):
        view = await _ask(town, _query(_family_child(town)))
    released = json.dumps(view["members"])
    assert "education.secret_notes" not in released
    assert any(flag.startswith("education:field_not_permitted_dropped") for flag in view["flags"])
    fetch = town.entries(query_id=view["query_id"], kind="fetch")
    flagged = [e for e in fetch if e.fields.get("counterparty_agency") == "education"]
    assert any("field_not_permitted_dropped" in r for r in flagged[0].fields["reasons"])


async def test_a_forged_connector_answer_is_never_used(town: Region) -> None:
    netloc = town.netloc("education")
    with _reroute(town, "education", _Rewriting(town.transport.routes[netloc], None, "education")):
        view = await _ask(town, _query(_family_child(town)))
    education = _status(view, "education")
    assert education["status"] == "error"
    assert "envelope-altered-body" in education["detail"]
    assert "education" not in _subject(view)["facts"]
    # The log says why the answer was not used, for the IG officer.
    fetch = town.entries(query_id=view["query_id"], kind="fetch")
    (refused,) = [e for e in fetch if e.fields.get("counterparty_agency") == "education"]
    assert refused.fields["reasons"] == ["error", "answer_rejected:envelope-altered-body"]


async def test_break_glass_is_audited(town: Region) -> None:
    body = _query(
        _family_child(town),
        purpose="child_protection_enquiry",
        gateway="ca1989_s47",
        break_glass={
            "reason_code": "immediate_risk_of_harm",
            "text": "Child reported missing overnight; police request.",
        },
    )
    view = await _ask(town, body, job_role="duty_social_worker")
    assert view["status"] != "refused", view["refusal"]
    kinds = [e.kind for e in town.entries(query_id=view["query_id"])]
    assert kinds.count("break_glass") == 1


async def test_a_refused_break_glass_keeps_what_was_claimed_for_the_ig_officer(
    town: Region,
) -> None:
    text = "Child reported missing overnight; police request."
    body = _query(
        _family_child(town),
        purpose="child_protection_enquiry",
        gateway="ca1989_s47",
        break_glass={"reason_code": "immediate_risk_of_harm", "text": text},
    )
    view = await _ask(town, body, job_role="social_worker")
    assert view["status"] == "refused"
    assert [r["code"] for r in view["refusal"]] == ["break_glass_role_not_permitted"]
    (refusal,) = town.entries(query_id=view["query_id"], kind="refusal")
    assert refusal.private["break_glass_text"] == text
    assert refusal.private["break_glass_reason_code"] == "immediate_risk_of_harm"
    assert town.entries(query_id=view["query_id"], kind="break_glass") == []


async def test_an_idempotency_key_answers_a_retry_without_running_it_again(town: Region) -> None:
    body = _query(_family_child(town))
    headers = {**town.headers(), "Idempotency-Key": "retry-test-1"}
    first = await town.client.post("/v1/family-queries", json=body, headers=headers)
    second = await town.client.post("/v1/family-queries", json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.headers.get("idempotent-replayed") == "true"
    assert first.json()["query_id"] == second.json()["query_id"]
    assert len(town.entries(query_id=first.json()["query_id"], kind="release")) == 1
    other = await town.client.post(
        "/v1/family-queries", json={**body, "case_reference": "CIN-9"}, headers=headers
    )
    assert other.status_code == 409


def _truth_person(town: Region, agency: str, ref: str) -> str:
    """The town's person behind an agency's opaque reference (tests hold the secrets)."""
    from broker.demo.layout import AGENCY_FILES
    from connectors.matching.references import LocalReferences

    secret = bytes.fromhex((town.layout.keys / f"{agency}.refs").read_text().strip())
    record = LocalReferences(agency, secret).key(ref)
    records: dict[str, str] = town.truth["agencies"][AGENCY_FILES[agency]]
    return records[record]


async def test_people_are_joined_across_agencies_as_the_ground_truth_says(town: Region) -> None:
    """Over 30 families: every joined member is one real person (precision), the subject
    is who was asked about, and most of the household the agencies hold is found."""
    candidates = [p for p in known_to(town.truth, 3) if p["role"] == "child"][5:35]
    members = wrong = subjects_right = 0
    found_household = expected_household = 0
    for person in candidates:
        view = await _ask(town, _query(person))
        for member in view["members"]:
            people = {_truth_person(town, r["agency_id"], r["ref"]) for r in member["records"]}
            members += 1
            wrong += len(people) > 1
            if member["is_subject"]:
                subjects_right += people == {person["person_id"]}
        held = {
            p["person_id"]
            for p in town.truth["people"]
            if p["household_id"] == person["household_id"]
            and p["person_id"] != person["person_id"]
            and set(p["records"]) & {a["agency_id"].replace("-", "_") for a in view["agencies"]}
        }
        seen = {
            _truth_person(town, r["agency_id"], r["ref"])
            for m in view["members"]
            if not m["is_subject"]
            for r in m["records"]
        }
        expected_household += len(held)
        found_household += len(held & seen)
    assert members > 60
    assert wrong / members <= 0.01
    assert subjects_right >= 0.95 * len(candidates)
    assert found_household >= 0.9 * expected_household


async def test_an_item_the_person_restricted_is_withheld_with_the_reason(town: Region) -> None:
    person = _family_child(town, 3)
    before = await _ask(town, _query(person))
    assert "education.attendance_rate" in json.dumps(_subject(before)["facts"])
    response = await town.client.post(
        "/v1/consents",
        json={
            "identifiers": [{"kind": "nhs_number", "value": person["nhs_number"]}],
            "purpose": "child_in_need_assessment",
            "scope": "all",
            "given_by": "parent",
            "channel": "in_person",
            "restricted_fields": ["education.attendance_rate"],
        },
        headers=town.headers(),
    )
    assert response.status_code == 201, response.text
    assert response.json()["restricted_fields"] == ["education.attendance_rate"]
    after = await _ask(town, _query(person))
    subject = _subject(after)
    released = [f["field"] for facts in subject["facts"].values() for f in facts]
    assert "education.attendance_rate" not in released
    assert "education.suspensions_12m" in released
    withheld = {(w["field"], w["code"]) for w in subject["withheld"]}
    assert ("education.attendance_rate", "restricted_by_person") in withheld


async def test_fetches_prove_the_log_extends_the_checkpoint_each_agency_holds(
    town: Region, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[str, FetchRequest]] = []
    fetch = ConnectorClient.fetch

    async def recording(
        self: ConnectorClient, endpoint: ConnectorEndpoint, message: FetchRequest, budget: float
    ) -> Any:
        sent.append((endpoint.agency_id, message))
        return await fetch(self, endpoint, message, budget)

    monkeypatch.setattr(ConnectorClient, "fetch", recording)
    audit = town.foundation.audit
    person = _family_child(town, 3)
    # A first query hands every agency fetched from a checkpoint; the log then grows.
    await _ask(town, _query(person))
    audit.sign_checkpoint()
    sent.clear()
    view = await _ask(town, _query(person))
    latest = audit.latest_checkpoint()
    assert latest is not None
    assert sent, "the query fetched from nobody"
    for agency, message in sent:
        # Each agency said in its match answer which checkpoint it holds; the proof
        # starts there, and the agency checked it before answering.
        assert message.broker_consistency_from is not None
        assert 0 < message.broker_consistency_from < latest.size
        assert message.broker_consistency_proof
        assert _status(view, agency)["status"] == "ok"

    # A proof that does not hold is caught by every agency, which then refuses.
    proof = audit.consistency_proof

    def wrong(old: int, new: int) -> list[bytes]:
        return [bytes(32)] * len(proof(old, new))

    monkeypatch.setattr(audit, "consistency_proof", wrong)
    audit.sign_checkpoint()
    sent.clear()
    refused = await _ask(town, _query(person))
    assert sent
    for agency, _ in sent:
        status = _status(refused, agency)
        assert status["status"] != "ok"
        assert "does not extend" in status["detail"], status
