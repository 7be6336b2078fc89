"""The IG officers' API over a real audit log: search, proofs, subject access, break-glass."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from audit.checkpoint import Checkpoint, NoteSigner, NoteVerifier, open_checkpoint, sign_checkpoint
from audit.entry import Decision, Kind
from audit.errors import StoreError
from audit.log import DEFAULT_ORIGIN
from audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from audit.search import SearchQuery
from broker.db import Database
from broker.errors import StoreUnavailable
from broker.identity import Principal, Role
from broker.oversight.schemas import ReviewIn
from broker.oversight.service import OversightService
from connectors.protocol.envelope import body_digest
from tests.audit.tampering import rewrite_entry
from tests.broker.foundation_kit import IssuerServer
from tests.broker.oversight_kit import CASEWORKER, OFFICER_NAME, Desk, at, desk

pytestmark = pytest.mark.anyio

NHS = "943 476 5919"
OTHER_NHS = "401 023 2137"


@pytest.fixture
async def broker(tmp_path: Path, dev_issuer: IssuerServer) -> AsyncIterator[Desk]:
    async with desk(tmp_path, dev_issuer) as running:
        yield running


@pytest.fixture
async def any_broker(
    tmp_path: Path, dev_issuer: IssuerServer, database_url: str
) -> AsyncIterator[Desk]:
    """The broker on SQLite and on PostgreSQL."""
    async with desk(tmp_path, dev_issuer, database_url=database_url) as running:
        yield running


async def _search(broker: Desk, **body: Any) -> list[int]:
    response = await broker.client.post("/v1/audit/search", json=body, headers=broker.officer())
    assert response.status_code == 200, response.text
    return [e["index"] for e in response.json()["entries"]]


def _fill(broker: Desk) -> dict[str, int]:
    """Entries differing in one filter each; returns their indexes by name."""
    person = broker.ref("nhs_number", NHS)
    other = broker.ref("nhs_number", OTHER_NHS)
    police_ref = broker.ref("local_ref", "police:P-2231")
    return {
        "fetch": broker.append(
            Kind.FETCH,
            counterparty_agency="police",
            fields_released=("police.missing_episodes_12m",),
            subjects=(person, police_ref),
            query_id="q1",
            time=at("2026-11-02 10:00"),
            request_digest="ab" * 32,
            private={"justification": "School raised concerns", "case_reference": "EH-1"},
        ),
        "match": broker.append(
            Kind.MATCH,
            counterparty_agency="health",
            decision=Decision.DENY,
            reasons=("refused",),
            subjects=(person,),
            query_id="q1",
            time=at("2026-11-02 10:01"),
        ),
        "other_actor": broker.append(
            Kind.QUERY_SUBMITTED,
            actor="dev:school:ana.teacher",
            actor_agency="school",
            purpose="safeguarding",
            legal_basis="public_task",
            subjects=(other,),
            query_id="q2",
            time=at("2026-11-05 09:00"),
        ),
        "late": broker.append(
            Kind.RELEASE,
            subjects=(other,),
            query_id="q2",
            time=at("2026-11-09 09:00"),
        ),
    }


async def test_search_by_each_filter(any_broker: Desk) -> None:
    broker = any_broker
    made = _fill(broker)
    assert await _search(broker, actor="dev:school:ana.teacher") == [made["other_actor"]]
    assert await _search(broker, actor_agency="school") == [made["other_actor"]]
    assert await _search(broker, counterparty_agency="police") == [made["fetch"]]
    assert await _search(broker, purpose="safeguarding") == [made["other_actor"]]
    assert await _search(broker, kind="match") == [made["match"]]
    assert await _search(broker, decision="deny") == [made["match"]]
    assert await _search(broker, query_id="q1") == [made["match"], made["fetch"]]
    window = {"since": "2026-11-02T10:00:30Z", "until": "2026-11-06T00:00:00Z"}
    assert await _search(broker, **window) == [made["other_actor"], made["match"]]


async def test_an_agency_filter_in_capitals_finds_the_agency_and_a_name_is_refused(
    broker: Desk,
) -> None:
    made = _fill(broker)
    assert await _search(broker, counterparty_agency=" Police ") == [made["fetch"]]
    assert await _search(broker, actor_agency="SCHOOL") == [made["other_actor"]]
    response = await broker.client.post(
        "/v1/audit/search",
        json={"counterparty_agency": "Northbrook Police"},
        headers=broker.officer(),
    )
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["location"] == "counterparty_agency"
    assert "agency id" in error["message"]
    assert "/v1/agencies" in error["message"]


async def test_search_by_person_from_identifiers(broker: Desk) -> None:
    made = _fill(broker)
    by_nhs = await _search(broker, identifiers=[{"kind": "nhs_number", "value": "9434765919"}])
    assert by_nhs == [made["match"], made["fetch"]]
    by_local = await _search(broker, identifiers=[{"kind": "local_ref", "value": "police:P-2231"}])
    assert by_local == [made["fetch"]]
    # That search is itself logged under the police reference (see below).
    logged = broker.audit.search(SearchQuery(kind="audit_access")).entries[0].index
    both = await _search(
        broker,
        identifiers=[
            {"kind": "local_ref", "value": "police:P-2231"},
            {"kind": "nhs_number", "value": OTHER_NHS},
        ],
    )
    assert both == [logged, made["late"], made["other_actor"], made["fetch"]]
    bad = await broker.client.post(
        "/v1/audit/search",
        json={"identifiers": [{"kind": "local_ref", "value": "no colon"}]},
        headers=broker.officer(),
    )
    assert bad.status_code == 422
    assert "'<agency>:<reference>'" in bad.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    "body",
    [{"cursor": True}, {"cursor": 1.0}, {"limit": "5"}, {"limit": 5.0}],
    ids=["cursor true", "cursor 1.0", "limit '5'", "limit 5.0"],
)
async def test_a_cursor_or_limit_that_is_not_a_whole_number_is_refused_not_read_as_one(
    broker: Desk, body: dict[str, object]
) -> None:
    _fill(broker)
    response = await broker.client.post("/v1/audit/search", json=body, headers=broker.officer())
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["location"] == next(iter(body))
    assert error["message"] == "Input should be a valid integer"


async def test_a_search_for_a_person_naming_no_identifier_is_refused(broker: Desk) -> None:
    _fill(broker)
    response = await broker.client.post(
        "/v1/audit/search", json={"identifiers": [], "limit": 3}, headers=broker.officer()
    )
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "urn:junction:problem:invalid-request"
    assert problem["errors"] == [
        {
            "location": "identifiers",
            "message": "List should have at least 1 item after validation, not 0",
        }
    ]
    assert "entries" not in problem


async def test_an_officers_search_for_a_person_and_report_on_them_are_logged(
    broker: Desk,
) -> None:
    made = _fill(broker)
    person = {"identifiers": [{"kind": "nhs_number", "value": NHS}]}
    # A search that names nobody reads no one's record: it is not logged.
    assert await _search(broker, kind="match") == [made["match"]]
    assert broker.audit.search(SearchQuery(kind="audit_access")).entries == []
    assert await _search(broker, **person) == [made["match"], made["fetch"]]
    [search] = broker.audit.search(SearchQuery(kind="audit_access")).entries
    assert search.fields["actor"].endswith("ivy.officer")
    assert search.fields["actor_agency"] == "council"
    assert search.fields["reasons"] == ["audit_search"]
    assert broker.ref("nhs_number", NHS) in search.fields["subjects"]
    # Filed under the person, it is found by the next search for them (each is logged
    # once its answer is ready, before it is given: an answer never lists its own entry).
    assert await _search(broker, **person) == [search.index, made["match"], made["fetch"]]
    response = await broker.client.post(
        "/v1/oversight/subject-access", json=person, headers=broker.officer()
    )
    assert response.status_code == 200, response.text
    accesses = response.json()["accesses"]
    assert [(a["kind"], a["what"]) for a in accesses[-2:]] == [
        ("audit_access", "audit records searched by an IG officer"),
        ("audit_access", "audit records searched by an IG officer"),
    ]
    report = broker.audit.search(SearchQuery(kind="audit_access")).entries[0]
    assert report.fields["reasons"] == ["subject_access_report"]
    again = await broker.client.post(
        "/v1/oversight/subject-access", json=person, headers=broker.officer()
    )
    assert again.json()["accesses"][-1]["what"] == "subject access report made by an IG officer"
    # The identifier itself is in no leaf, not even as a digest of the request.
    for entry in broker.audit.search(SearchQuery(kind="audit_access")).entries:
        assert "9434765919" not in str(entry.fields)
        assert entry.fields["request_digest"] != body_digest(person)


async def test_a_search_for_a_person_the_log_cannot_record_shows_nothing(
    broker: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(broker)

    def full(entry: object) -> int:
        raise StoreError("disk full")

    monkeypatch.setattr(broker.audit, "append", full)
    person = {"identifiers": [{"kind": "nhs_number", "value": NHS}]}
    for path in ("/v1/audit/search", "/v1/oversight/subject-access"):
        response = await broker.client.post(path, json=person, headers=broker.officer())
        assert response.status_code == 503, response.text
        assert response.json()["type"] == "urn:junction:problem:store-unavailable"
        assert "could not record this read, so nothing is shown" in response.json()["detail"]
        assert "accesses" not in response.text
        assert "entries" not in response.text


@pytest.mark.parametrize("written", [20260101, "20260101", 1.8e9])
async def test_a_time_written_as_a_number_is_refused_not_read_as_seconds_since_1970(
    broker: Desk, written: object
) -> None:
    person = {"identifiers": [{"kind": "nhs_number", "value": NHS}]}
    for path, body in [
        ("/v1/audit/search", {"since": written}),
        ("/v1/oversight/subject-access", {**person, "since": written}),
    ]:
        response = await broker.client.post(path, json=body, headers=broker.officer())
        assert response.status_code == 422, response.text
        (error,) = response.json()["errors"]
        assert error["location"] == "since"
        assert error["message"].endswith("a time such as 2026-01-01T00:00:00Z, not a number")
    anomalies = await broker.client.get(
        "/v1/oversight/anomalies", params={"until": str(written)}, headers=broker.officer()
    )
    assert anomalies.status_code == 422, anomalies.text
    assert anomalies.json()["errors"][0]["location"] == "query.until"


@pytest.mark.parametrize("path", ["/v1/audit/search", "/v1/oversight/subject-access"])
@pytest.mark.parametrize(
    ("value", "words"),
    [("9434765918", "nhs_number fails its check digit"), ("abc", "nhs_number must be 10 digits")],
)
async def test_an_nhs_number_that_is_not_one_is_refused_naming_the_member(
    broker: Desk, path: str, value: str, words: str
) -> None:
    response = await broker.client.post(
        path,
        json={"identifiers": [{"kind": "nhs_number", "value": value}]},
        headers=broker.officer(),
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:junction:problem:invalid-request"
    [error] = problem["errors"]
    assert error["location"] == "identifiers.0.value"
    assert words in error["message"]
    assert value not in response.text


async def test_a_query_naming_an_nhs_number_with_hyphens_is_found_without_them(
    broker: Desk,
) -> None:
    query = {
        "subject": {
            "given_name": "Amelia",
            "family_name": "Okafor",
            "date_of_birth": "2014-05-02",
            "identifiers": {"nhs_number": "943-476-5919"},
        },
        "purpose": "early_help_assessment",
        "legal_basis": "public_task",
        "gateway": "ca2004_s10",
        "case_reference": "EH-2026-0413",
        "justification": "School raised attendance and welfare concerns.",
    }
    council = {"id": "council", "name": "Council", "type": "local_authority"}
    registered = await broker.client.post(
        "/v1/agencies", json=council, headers=broker.as_(Role.ADMIN)
    )
    assert registered.status_code == 201, registered.text
    asked = await broker.client.post(
        "/v1/family-queries",
        json=query,
        headers=broker.as_(Role.CASEWORKER, name="Sam Caseworker"),
    )
    assert asked.status_code == 200, asked.text
    report = await broker.client.post(
        "/v1/oversight/subject-access",
        json={"identifiers": [{"kind": "nhs_number", "value": "9434765919"}]},
        headers=broker.officer(),
    )
    assert report.status_code == 200, report.text
    accesses = report.json()["accesses"]
    assert accesses, "the query's entries are filed under the plain number"
    assert {a["query_id"] for a in accesses} == {asked.json()["query_id"]}


async def test_results_show_names_digests_and_private_values_until_erased(broker: Desk) -> None:
    made = _fill(broker)
    response = await broker.client.post(
        "/v1/audit/search", json={"kind": "fetch"}, headers=broker.officer()
    )
    entry = response.json()["entries"][0]
    assert entry["fields_released"] == ["police.missing_episodes_12m"]
    assert entry["digests"]["request"] == "ab" * 32
    assert entry["private"] == {"justification": "School raised concerns", "case_reference": "EH-1"}
    assert entry["erasure"] is None

    broker.audit.erase(made["fetch"], "dev:council:ivy.officer", "retention period ended")
    response = await broker.client.post(
        "/v1/audit/search", json={"kind": "fetch"}, headers=broker.officer()
    )
    entry = response.json()["entries"][0]
    assert entry["private"] == {}
    assert entry["erasure"]["erased_by"] == "dev:council:ivy.officer"
    assert entry["erasure"]["text"].startswith("erased on 20")
    assert entry["erasure"]["text"].endswith("by dev:council:ivy.officer")


async def test_search_pages_with_a_cursor(broker: Desk) -> None:
    made = [broker.append(Kind.MATCH, counterparty_agency="police") for _ in range(5)]
    seen: list[int] = []
    cursor = None
    for _ in range(5):
        body: dict[str, Any] = {"kind": "match", "limit": 2}
        if cursor is not None:
            body["cursor"] = cursor
        response = await broker.client.post("/v1/audit/search", json=body, headers=broker.officer())
        page = response.json()
        seen += [e["index"] for e in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(made, reverse=True)


async def test_one_entry_with_a_proof_that_verifies_offline(broker: Desk) -> None:
    made = _fill(broker)
    response = await broker.client.get(
        f"/v1/audit/entries/{made['match']}", headers=broker.officer()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    proof = body["proof"]
    assert body["entry"]["kind"] == "match"
    checkpoint_view = (
        await broker.client.get("/v1/audit/checkpoint", headers=broker.officer())
    ).json()
    verifier = NoteVerifier.from_verifier_key(checkpoint_view["verifier_key"])
    checkpoint = open_checkpoint(proof["checkpoint"], verifier, origin=DEFAULT_ORIGIN)
    leaf = leaf_hash(proof["leaf"].encode())
    assert leaf.hex() == proof["leaf_hash"]
    verify_inclusion(
        leaf,
        made["match"],
        checkpoint.size,
        [bytes.fromhex(h) for h in proof["inclusion_proof"]],
        checkpoint.root_hash,
    )
    assert proof["tree_size"] == checkpoint.size
    missing = await broker.client.get("/v1/audit/entries/99999", headers=broker.officer())
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


async def test_reading_one_entry_about_a_person_is_logged_under_them(broker: Desk) -> None:
    made = _fill(broker)
    unnamed = broker.append(Kind.FETCH, counterparty_agency="police")
    response = await broker.client.get(
        f"/v1/audit/entries/{made['fetch']}", headers=broker.officer()
    )
    assert response.status_code == 200, response.text
    assert response.json()["entry"]["private"]["justification"] == "School raised concerns"
    [read] = broker.audit.search(SearchQuery(kind="audit_access")).entries
    assert read.fields["actor"].endswith("ivy.officer")
    assert read.fields["reasons"] == ["audit_entry"]
    assert sorted(read.fields["subjects"]) == sorted(
        broker.audit.get(made["fetch"]).fields["subjects"]
    )
    person = {"identifiers": [{"kind": "nhs_number", "value": NHS}]}
    report = await broker.client.post(
        "/v1/oversight/subject-access", json=person, headers=broker.officer()
    )
    last = report.json()["accesses"][-1]
    assert (last["index"], last["what"]) == (read.index, "audit entry read by an IG officer")
    # An entry filed under nobody reads no one's record.
    other = await broker.client.get(f"/v1/audit/entries/{unnamed}", headers=broker.officer())
    assert other.status_code == 200, other.text
    assert len(broker.audit.search(SearchQuery(kind="audit_access")).entries) == 2


async def test_an_entry_read_the_log_cannot_record_is_not_shown(
    broker: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _fill(broker)
    broker.signed_size()

    def full(entry: object) -> int:
        raise StoreError("disk full")

    monkeypatch.setattr(broker.audit, "append", full)
    response = await broker.client.get(
        f"/v1/audit/entries/{made['fetch']}", headers=broker.officer()
    )
    assert response.status_code == 503, response.text
    assert "could not record this read, so nothing is shown" in response.json()["detail"]
    assert "School raised concerns" not in response.text


async def test_values_past_what_the_log_can_hold_are_refused_not_failed(broker: Desk) -> None:
    _fill(broker)
    officer = broker.officer()
    huge = "/99999999999999999999999"
    entry = await broker.client.get("/v1/audit/entries" + huge, headers=officer)
    review = await broker.client.post(
        f"/v1/oversight/break-glass{huge}/review",
        json={"outcome": "justified", "note": "checked"},
        headers=officer,
    )
    from_the_start = await broker.client.get(
        "/v1/oversight/anomalies", params={"since": "0001-01-01T00:00:00Z"}, headers=officer
    )
    too_early = await broker.client.get(
        "/v1/oversight/anomalies", params={"until": "0001-01-02T00:00:00Z"}, headers=officer
    )
    backwards = await broker.client.post(
        "/v1/oversight/subject-access",
        json={
            "identifiers": [{"kind": "nhs_number", "value": NHS}],
            "since": "2026-11-30T00:00:00Z",
            "until": "2026-11-01T00:00:00Z",
        },
        headers=officer,
    )
    assert [entry.status_code, review.status_code] == [422, 422]
    assert from_the_start.status_code == 200, from_the_start.text
    assert [too_early.status_code, backwards.status_code] == [422, 422]
    assert "1970" in too_early.json()["detail"]
    assert backwards.json()["detail"] == "'since' must be earlier than 'until'"
    # Reads change nothing: what is wrong is the request, not a change.
    assert {too_early.json()["type"], backwards.json()["type"]} == {
        "urn:junction:problem:invalid-request"
    }


async def test_a_pasted_checkpoint_is_proved_consistent(broker: Desk) -> None:
    _fill(broker)
    broker.signed_size()
    kept = (await broker.client.get("/v1/audit/checkpoint", headers=broker.officer())).json()
    _fill(broker)
    broker.signed_size()

    response = await broker.client.post(
        "/v1/audit/consistency", json={"checkpoint": kept["note"]}, headers=broker.officer()
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["consistent"] is True
    assert result["from_size"] == kept["tree_size"] < result["to_size"]
    verify_consistency(
        result["from_size"],
        result["to_size"],
        bytes.fromhex(kept["root_hash"]),
        bytes.fromhex(result["to_root"]),
        [bytes.fromhex(h) for h in result["proof"]],
    )
    by_size = await broker.client.get(
        "/v1/audit/consistency",
        params={"from_size": kept["tree_size"]},
        headers=broker.officer(),
    )
    assert by_size.json()["proof"] == result["proof"]
    too_big = await broker.client.get(
        "/v1/audit/consistency", params={"from_size": 10_000}, headers=broker.officer()
    )
    assert too_big.status_code == 422


async def test_a_forged_checkpoint_is_rejected(broker: Desk) -> None:
    _fill(broker)
    broker.signed_size()
    note = (await broker.client.get("/v1/audit/checkpoint", headers=broker.officer())).json()[
        "note"
    ]
    body, _, signature = note.partition("\n\n")
    name, _, encoded = signature.strip().rpartition(" ")
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 0x01
    tampered = f"{body}\n\n{name} {base64.b64encode(bytes(raw)).decode()}\n"
    stranger = sign_checkpoint(
        open_checkpoint(note, broker.signer.verifier()), NoteSigner.generate(DEFAULT_ORIGIN)
    )
    for forged in (tampered, stranger, "not a checkpoint at all"):
        response = await broker.client.post(
            "/v1/audit/consistency", json={"checkpoint": forged}, headers=broker.officer()
        )
        assert response.status_code == 422, response.text
        assert response.json()["type"].endswith("checkpoint-rejected")


async def test_a_checkpoint_of_another_history_is_inconsistent(broker: Desk) -> None:
    _fill(broker)
    size = broker.signed_size()
    # Signed by the log's own key, but over a different history: a fork.
    fork = sign_checkpoint(Checkpoint(DEFAULT_ORIGIN, size - 1, b"\x07" * 32), broker.signer)
    response = await broker.client.post(
        "/v1/audit/consistency", json={"checkpoint": fork}, headers=broker.officer()
    )
    assert response.status_code == 200, response.text
    assert response.json()["consistent"] is False
    assert "differs" in response.json()["detail"]

    ahead = sign_checkpoint(Checkpoint(DEFAULT_ORIGIN, size + 50, b"\x07" * 32), broker.signer)
    response = await broker.client.post(
        "/v1/audit/consistency", json={"checkpoint": ahead}, headers=broker.officer()
    )
    assert response.json()["consistent"] is False
    assert "rolled back" in response.json()["detail"]


async def test_a_pasted_checkpoint_is_checked_against_the_entries_not_the_stored_tree(
    any_broker: Desk,
) -> None:
    broker = any_broker
    target = _fill(broker)["match"]
    broker.signed_size()
    kept = (await broker.client.get("/v1/audit/checkpoint", headers=broker.officer())).json()
    _fill(broker)
    broker.signed_size()
    # An entry the kept checkpoint signs is rewritten with its stored hash; the stored
    # tree, which a proof is read from, is left as it was.
    rewrite_entry(broker.audit.store.engine, target, b'"decision":"deny"', b'"decision":"allow"')

    response = await broker.client.post(
        "/v1/audit/consistency", json={"checkpoint": kept["note"]}, headers=broker.officer()
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["consistent"] is False
    assert result["prefix_intact"] is False
    assert result["finding"]["kind"] == "entry_altered"
    assert result["finding"]["index"] == target & ~1  # the pair sharing the changed node
    assert result["detail"].startswith("the log's history differs from the pasted checkpoint")
    assert result["proof"] == []


async def test_subject_access_report_json_and_html(broker: Desk) -> None:
    made = _fill(broker)
    body = {
        "identifiers": [
            {"kind": "nhs_number", "value": NHS},
            {"kind": "local_ref", "value": "police:P-2231"},
        ]
    }
    response = await broker.client.post(
        "/v1/oversight/subject-access", json=body, headers=broker.officer()
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert [a["index"] for a in report["accesses"]] == [made["fetch"], made["match"]]
    fetch = report["accesses"][0]
    assert fetch["who"] == CASEWORKER
    assert fetch["agency"] == "police"
    assert fetch["purpose"] == "early_help_assessment"
    assert fetch["legal_basis"] == "consent"
    assert fetch["fields_released"] == ["police.missing_episodes_12m"]
    assert report["by_agency"] == {"health": 1, "police": 1}
    assert report["identifiers"] == ["nhs_number ending 5919", "police reference ending 231"]
    assert "School raised concerns" not in response.text

    page = await broker.client.post(
        "/v1/oversight/subject-access",
        params={"format": "html"},
        json=body,
        headers=broker.officer(),
    )
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<html lang="en-GB">' in html
    assert "@media print" in html
    assert '<th scope="col">Agency asked</th>' in html
    assert "police.missing_episodes_12m" in html
    assert "9434765919" not in html.replace(" ", "")


async def test_break_glass_review_is_audited_and_leaves_the_queue(any_broker: Desk) -> None:
    broker = any_broker
    person = broker.ref("nhs_number", NHS)
    used = broker.append(
        Kind.BREAK_GLASS,
        reasons=("immediate_risk",),
        subjects=(person,),
        query_id="q9",
        private={"break_glass_text": "Child alone at 2am"},
    )
    other = broker.append(Kind.FETCH, counterparty_agency="police")
    queue = await broker.client.get("/v1/oversight/break-glass", headers=broker.officer())
    assert [i["entry"]["index"] for i in queue.json()["items"]] == [used]
    assert queue.json()["items"][0]["entry"]["private"]["break_glass_text"] == "Child alone at 2am"

    review = {"outcome": "not_justified", "note": "No risk recorded on the case file."}
    response = await broker.client.post(
        f"/v1/oversight/break-glass/{used}/review", json=review, headers=broker.officer()
    )
    assert response.status_code == 201, response.text
    recorded = response.json()
    entry = broker.audit.get(recorded["review_entry"])
    assert entry.kind == "access_review"
    assert entry.fields["reasons"] == ["not_justified", f"reviewed_entry:{used}"]
    assert entry.fields["request_digest"] == broker.audit.get(used).leaf_hash.hex()
    assert entry.fields["subjects"] == [person]
    assert entry.private == {"note": "No risk recorded on the case file."}

    pending = await broker.client.get("/v1/oversight/break-glass", headers=broker.officer())
    assert pending.json()["items"] == []
    reviewed = await broker.client.get(
        "/v1/oversight/break-glass", params={"state": "reviewed"}, headers=broker.officer()
    )
    assert reviewed.json()["items"][0]["review"]["outcome"] == "not_justified"

    again = await broker.client.post(
        f"/v1/oversight/break-glass/{used}/review", json=review, headers=broker.officer()
    )
    assert again.status_code == 409
    assert "already reviewed" in again.json()["detail"]
    wrong = await broker.client.post(
        f"/v1/oversight/break-glass/{other}/review", json=review, headers=broker.officer()
    )
    assert wrong.status_code == 422
    missing = await broker.client.post(
        "/v1/oversight/break-glass/99999/review", json=review, headers=broker.officer()
    )
    assert missing.status_code == 404
    bad = await broker.client.post(
        f"/v1/oversight/break-glass/{used}/review",
        json={"outcome": "fine", "note": "x"},
        headers=broker.officer(),
    )
    assert bad.status_code == 422
    assert len(broker.audit.search(SearchQuery(kind="access_review")).entries) == 1


async def test_the_break_glass_queue_pages_to_its_oldest_use(broker: Desk) -> None:
    uses = [broker.append(Kind.BREAK_GLASS, reasons=("immediate_risk",)) for _ in range(5)]
    seen: list[int] = []
    params: dict[str, Any] = {"limit": 2}
    for _ in range(5):
        page = await broker.client.get(
            "/v1/oversight/break-glass", params=params, headers=broker.officer()
        )
        assert page.status_code == 200, page.text
        seen += [item["entry"]["index"] for item in page.json()["items"]]
        if not seen or seen[-1] == uses[3]:
            # Uses arriving, or reviewed, between pages neither repeat nor hide one.
            broker.append(Kind.BREAK_GLASS, reasons=("immediate_risk",))
            review = {"outcome": "justified", "note": "Checked."}
            await broker.client.post(
                f"/v1/oversight/break-glass/{uses[4]}/review", json=review, headers=broker.officer()
            )
        if page.json()["next_cursor"] is None:
            break
        params["cursor"] = page.json()["next_cursor"]
    assert seen == uses[::-1]
    bad = await broker.client.get(
        "/v1/oversight/break-glass", params={"cursor": -1}, headers=broker.officer()
    )
    assert bad.status_code == 422


async def test_officers_reviewing_one_use_at_once_leave_one_review_in_the_log(
    any_broker: Desk,
) -> None:
    broker = any_broker
    used = broker.append(Kind.BREAK_GLASS, reasons=("immediate_risk",), query_id="q9")
    path = f"/v1/oversight/break-glass/{used}/review"

    async def review(officer: int) -> httpx.Response:
        note = {"outcome": "justified", "note": f"Checked by officer {officer}."}
        headers = broker.as_(Role.IG_OFFICER, name=f"Officer {officer}")
        return await broker.client.post(path, json=note, headers=headers)

    responses = await asyncio.gather(*(review(n) for n in range(4)))
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
    kept = next(r.json() for r in responses if r.status_code == 201)
    for refused in (r for r in responses if r.status_code == 409):
        assert refused.json()["type"].endswith("conflict")
        assert "already reviewed" in refused.json()["detail"]
    # The log records the one review that was kept, and no other.
    recorded = broker.audit.search(SearchQuery(kind="access_review")).entries
    assert [e.index for e in recorded] == [kept["review_entry"]]


class _WritesFail(Database):
    """The broker's database, refusing every write as one that has just gone down."""

    def session(self, *, write: bool = False) -> AbstractContextManager[Session]:
        if write:
            raise StoreUnavailable("the database is not answering")
        return super().session()


async def test_a_review_logged_while_its_table_write_fails_still_counts_once(
    any_broker: Desk,
) -> None:
    broker = any_broker
    used = broker.append(Kind.BREAK_GLASS, reasons=("immediate_risk",), query_id="q9")
    failing = OversightService(
        audit=broker.audit,
        db=_WritesFail(broker.foundation.db.engine),
        subjects=broker.keys,
    )
    officer = Principal("dev:council:ivy", OFFICER_NAME, Role.IG_OFFICER, "council")
    first = failing.review(officer, used, ReviewIn(outcome="escalated", note="Sent to DPO."))

    queue = await broker.client.get(
        "/v1/oversight/break-glass", params={"state": "reviewed"}, headers=broker.officer()
    )
    [item] = queue.json()["items"]
    assert item["review"]["outcome"] == "escalated"
    assert item["review"]["review_entry"] == first.review_entry
    again = await broker.client.post(
        f"/v1/oversight/break-glass/{used}/review",
        json={"outcome": "justified", "note": "Looks fine."},
        headers=broker.officer(),
    )
    assert again.status_code == 409
    assert f"recorded as entry {first.review_entry}" in again.json()["detail"]
    recorded = broker.audit.search(SearchQuery(kind="access_review")).entries
    assert [e.index for e in recorded] == [first.review_entry]


async def test_an_officer_erases_an_entrys_private_values_once(any_broker: Desk) -> None:
    broker = any_broker
    made = _fill(broker)
    order = {"reason": "Court order 2026/117"}
    path = f"/v1/audit/entries/{made['fetch']}/erasure"
    response = await broker.client.post(path, json=order, headers=broker.officer())
    assert response.status_code == 201, response.text
    erased = response.json()
    assert erased["erased_index"] == made["fetch"]
    assert erased["reason"] == "Court order 2026/117"
    assert erased["erased_by"].endswith("ivy.officer")
    erasure = broker.audit.get(erased["erasure_index"])
    assert (erasure.kind, erasure.fields["erases"]) == ("erasure", made["fetch"])
    # Filed under the erased entry's people: their subject access report shows it.
    person = {"identifiers": [{"kind": "nhs_number", "value": NHS}]}
    report = await broker.client.post(
        "/v1/oversight/subject-access", json=person, headers=broker.officer()
    )
    rows = {a["index"]: a for a in report.json()["accesses"]}
    assert rows[erased["erasure_index"]]["what"] == "record of an access erased"
    assert rows[erased["erasure_index"]]["who_agency"] == "council"
    entry = await broker.client.get(f"/v1/audit/entries/{made['fetch']}", headers=broker.officer())
    assert entry.json()["entry"]["private"] == {}
    assert entry.json()["entry"]["erasure"]["erasure_index"] == erased["erasure_index"]

    again = await broker.client.post(path, json=order, headers=broker.officer())
    assert again.status_code == 409
    assert f"already erased by entry {erased['erasure_index']}" in again.json()["detail"]
    of_erasure = await broker.client.post(
        f"/v1/audit/entries/{erased['erasure_index']}/erasure", json=order, headers=broker.officer()
    )
    assert of_erasure.status_code == 422
    assert "is an erasure entry" in of_erasure.json()["detail"]
    nothing = await broker.client.post(
        f"/v1/audit/entries/{made['match']}/erasure", json=order, headers=broker.officer()
    )
    assert nothing.status_code == 422
    assert "no private values" in nothing.json()["detail"]
    missing = await broker.client.post(
        "/v1/audit/entries/99999/erasure", json=order, headers=broker.officer()
    )
    assert missing.status_code == 404
    for body in ({}, {"reason": "   "}, {"reason": "x" * 201}):
        bad = await broker.client.post(path, json=body, headers=broker.officer())
        assert bad.status_code == 422, body
    # One erasure in the log, whatever was tried after it.
    assert len(broker.audit.search(SearchQuery(kind="erasure")).entries) == 1


async def test_what_an_officer_writes_for_the_log_holds_no_control_characters(
    any_broker: Desk,
) -> None:
    broker = any_broker
    made = _fill(broker)
    used = broker.append(Kind.BREAK_GLASS, reasons=("immediate_risk",), query_id="q9")
    before = broker.audit.store.size()
    review = f"/v1/oversight/break-glass/{used}/review"
    erasure = f"/v1/audit/entries/{made['fetch']}/erasure"
    for path, body, where in [
        (review, {"outcome": "justified", "note": "Cleared\x1b[2J by phone"}, "note"),
        (erasure, {"reason": "Court order\n2026/117"}, "reason"),
        (erasure, {"reason": "Court order\x07 2026/117"}, "reason"),
    ]:
        refused = await broker.client.post(path, json=body, headers=broker.officer())
        assert refused.status_code == 422, refused.text
        (error,) = refused.json()["errors"]
        assert error["location"] == where
        assert "remove the control character" in error["message"]
    assert broker.audit.store.size() == before
    # A note may run over several lines.
    note = {"outcome": "justified", "note": "Manager confirmed.\n\tCase file updated."}
    kept = await broker.client.post(review, json=note, headers=broker.officer())
    assert kept.status_code == 201, kept.text


async def test_erasures_of_one_entry_at_once_leave_one_erasure(any_broker: Desk) -> None:
    broker = any_broker
    made = _fill(broker)
    path = f"/v1/audit/entries/{made['fetch']}/erasure"

    async def erase(officer: int) -> httpx.Response:
        headers = broker.as_(Role.IG_OFFICER, name=f"Officer {officer}")
        return await broker.client.post(path, json={"reason": "Court order"}, headers=headers)

    responses = await asyncio.gather(*(erase(n) for n in range(4)))
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
    assert len(broker.audit.search(SearchQuery(kind="erasure")).entries) == 1


ADMIN, IG, CASEWORKER_ROLE = Role.ADMIN, Role.IG_OFFICER, Role.CASEWORKER
IDS = {"identifiers": [{"kind": "upn", "value": "B801200005001"}]}
# (method, path, body, roles allowed), written out by hand on purpose.
MATRIX: list[tuple[str, str, Any, set[Role]]] = [
    ("POST", "/v1/audit/search", {}, {IG}),
    ("GET", "/v1/audit/entries/{index}", None, {IG}),
    ("GET", "/v1/audit/checkpoint", None, {IG, ADMIN}),
    ("GET", "/v1/audit/consistency?from_size=1", None, {IG, ADMIN}),
    ("POST", "/v1/audit/consistency", "note", {IG, ADMIN}),
    ("POST", "/v1/oversight/subject-access", IDS, {IG}),
    ("POST", "/v1/oversight/subject-access?format=html", IDS, {IG}),
    ("GET", "/v1/oversight/break-glass", None, {IG}),
    (
        "POST",
        "/v1/oversight/break-glass/{index}/review",
        {"outcome": "justified", "note": "ok"},
        {IG},
    ),
    ("GET", "/v1/oversight/anomalies", None, {IG}),
    ("POST", "/v1/audit/entries/{index}/erasure", {"reason": "Court order"}, {IG}),
]


async def test_role_by_endpoint_matrix(broker: Desk) -> None:
    for method, template, body, allowed in MATRIX:
        for role in (ADMIN, IG, CASEWORKER_ROLE):
            used = broker.append(
                Kind.BREAK_GLASS, reasons=("immediate_risk",), private={"break_glass_text": "x"}
            )
            broker.signed_size()
            path = template.format(index=used)
            if body == "note":
                note = broker.audit.latest_checkpoint_note()
                payload: Any = {"checkpoint": note}
            else:
                payload = body
            response = await broker.client.request(
                method, path, json=payload, headers=broker.as_(role)
            )
            if role in allowed:
                assert response.status_code in (200, 201), (method, path, role, response.text)
            else:
                assert response.status_code == 403, (method, path, role, response.text)
                assert response.headers["content-type"].startswith("application/problem+json")
                assert response.json()["type"].endswith("forbidden")
        anonymous = await broker.client.request(method, template.format(index=0), json=body)
        assert anonymous.status_code == 401


async def test_every_audit_and_oversight_route_is_in_the_matrix(broker: Desk) -> None:
    listed = {(m, p.split("?")[0].replace("{index}", "{x}")) for m, p, _, _ in MATRIX}
    for route in broker.app.routes:
        path = getattr(route, "path", "")
        if path.startswith(("/v1/audit", "/v1/oversight")):
            for method in getattr(route, "methods", ()):
                assert (method, path.replace("{index}", "{x}")) in listed, (method, path)
