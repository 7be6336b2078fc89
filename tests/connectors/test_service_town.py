"""The wired connector over a synthetic town's real SQLite database, with a real audit log."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from audit.checkpoint import Checkpoint, NoteVerifier, open_checkpoint, sign_checkpoint
from audit.merkle import NodeId, consistency_proof, leaf_hash, root_from_leaf_hashes
from connectors.config import load_service_config
from connectors.local_audit import local_log_origin
from connectors.protocol.envelope import KeyRing, Verifier
from connectors.protocol.messages import (
    FetchPerson,
    FetchRequest,
    FetchResponse,
    MatchRequest,
    MatchResponse,
    Subject,
)
from connectors.service.wiring import BuiltConnector, build_connector
from connectors.settings import ConnectorSettings
from tests.connectors.town_kit import LOG_KEY_NAME, AgencySetup, configure_agency, make_town

pytestmark = pytest.mark.anyio

POLICE_FIELDS = ["police.callouts_12m", "police.missing_episodes_12m"]


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("town")
    return out, make_town(out)


@pytest.fixture
def police(
    tmp_path: Path, town: tuple[Path, dict[str, Any]]
) -> Iterator[tuple[AgencySetup, BuiltConnector]]:
    setup = configure_agency(tmp_path, town[0], "police")
    built = build_connector(
        load_service_config(setup.config_path), ConnectorSettings(), environ=setup.environ
    )
    try:
        yield setup, built
    finally:
        built.close()


@pytest.fixture
async def client(police: tuple[AgencySetup, BuiltConnector]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=police[1].app), base_url="http://police"
    ) as c:
        yield c


def _known_to_police(truth: dict[str, Any]) -> dict[str, Any]:
    people: list[dict[str, Any]] = [
        p for p in truth["people"] if "police" in p["records"] and p["nhs_number"]
    ]
    return people[0]


def _subject(person: dict[str, Any]) -> Subject:
    return Subject(
        given_name=person["given_name"],
        family_name=person["family_name"],
        date_of_birth=person["date_of_birth"],
        postcode=person["postcode"],
        identifiers={"nhs_number": person["nhs_number"]},
    )


def _match(subject: Subject, query_id: str = "q-town") -> MatchRequest:
    return MatchRequest(
        query_id=query_id,
        requester_agency="social-care",
        purpose="child_protection_enquiry",
        subject=subject,
    )


def _fetch(persons: dict[str, list[str]], **extra: Any) -> FetchRequest:
    return FetchRequest(
        query_id="q-town",
        exchange_id="x-town",
        requester_agency="social-care",
        requester_role="social_worker",
        purpose="child_protection_enquiry",
        legal_basis="ca1989_s47",
        decision_digest="sha256:" + "cd" * 32,
        persons=[FetchPerson(ref=ref, fields=fields) for ref, fields in persons.items()],
        **extra,
    )


def _open(setup: AgencySetup, built: BuiltConnector, raw: bytes, expect: type[Any]) -> Any:
    ring = KeyRing()
    ring.add("police", built.service.public_key)
    return Verifier(ring, "broker").open(raw, expect).message


async def _matched_ref(
    client: httpx.AsyncClient, setup: AgencySetup, built: BuiltConnector, person: dict[str, Any]
) -> str:
    raw = setup.broker().seal(_match(_subject(person)), "police").to_bytes()
    response = await client.post("/v1/match", content=raw)
    assert response.status_code == 200, response.text
    answer = _open(setup, built, response.content, MatchResponse)
    assert answer.status == "matched"
    ref: str = answer.candidates[0].ref
    return ref


async def test_match_then_fetch_over_a_real_database_and_audit_log(
    client: httpx.AsyncClient,
    police: tuple[AgencySetup, BuiltConnector],
    town: tuple[Path, dict[str, Any]],
) -> None:
    setup, built = police
    person = _known_to_police(town[1])
    ref = await _matched_ref(client, setup, built, person)
    asked = [*POLICE_FIELDS, "health.registered_practice"]
    raw = setup.broker().seal(_fetch({ref: asked}), "police").to_bytes()
    response = await client.post("/v1/fetch", content=raw)
    assert response.status_code == 200, response.text
    answer = _open(setup, built, response.content, FetchResponse)
    [facts] = answer.persons
    assert sorted(f.field for f in facts.facts) == sorted(POLICE_FIELDS)
    assert all(f.as_of.tzinfo is not None for f in facts.facts)
    assert [(w.field, w.code) for w in facts.withheld] == [
        ("health.registered_practice", "not-offered")
    ]
    assert answer.decision_digest == "sha256:" + "cd" * 32
    # Both exchanges are in the agency's own log, whose checkpoint the agency key signs.
    log = built.audit.log
    receipt = log.receipt(1, timeout=5)
    verifier = NoteVerifier(local_log_origin("police"), built.service.public_key)
    checkpoint = open_checkpoint(receipt.checkpoint, verifier, origin=local_log_origin("police"))
    assert checkpoint.size >= 2
    kinds = [log.get(i).kind for i in range(2)]
    assert kinds == ["match", "fetch"]
    fetched = log.get(1).fields
    assert fetched["fields_released"] == sorted(POLICE_FIELDS)
    assert fetched["subjects"] == [built.audit.subject(ref)]
    assert person["family_name"] not in str(fetched)


SQL_NASTIES = [
    "Robert'); DROP TABLE PERSON;--",
    "' OR '1'='1",
    '" OR ""="',
    "%",
    "_",
    "\\'; SELECT * FROM sqlite_master; --",
]


@pytest.mark.parametrize("nasty", SQL_NASTIES)
async def test_sql_metacharacters_in_every_input_are_harmless(
    nasty: str,
    client: httpx.AsyncClient,
    police: tuple[AgencySetup, BuiltConnector],
    town: tuple[Path, dict[str, Any]],
) -> None:
    setup, built = police
    database = town[0] / "police.db"
    before = _row_counts(database)
    subject = Subject(
        given_name=nasty,
        family_name=nasty,
        postcode=nasty[:10],
        identifiers={"nhs_number": nasty, "pnc_id": nasty},
    )
    raw = setup.broker().seal(_match(subject), "police").to_bytes()
    match = await client.post("/v1/match", content=raw)
    assert match.status_code == 200, match.text
    assert _open(setup, built, match.content, MatchResponse).status == "no_record"
    ref = (nasty * 8)[:100]
    fetch_raw = setup.broker().seal(_fetch({ref: POLICE_FIELDS}), "police").to_bytes()
    fetch = await client.post("/v1/fetch", content=fetch_raw)
    assert fetch.status_code == 200, fetch.text
    [person] = _open(setup, built, fetch.content, FetchResponse).persons
    assert person.facts == []
    assert {w.code for w in person.withheld} == {"unknown-person"}
    assert _row_counts(database) == before


def _row_counts(database: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}  # noqa: S608


def _tree(size: int, tag: bytes) -> list[bytes]:
    return [leaf_hash(tag + i.to_bytes(4, "big")) for i in range(size)]


def _reader(leaves: Sequence[bytes]):  # type: ignore[no-untyped-def]
    def read(ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        return {
            (level, index): root_from_leaf_hashes(leaves[index << level : (index + 1) << level])
            for level, index in ids
        }

    return read


def _note(setup: AgencySetup, leaves: Sequence[bytes]) -> str:
    checkpoint = Checkpoint(LOG_KEY_NAME, len(leaves), root_from_leaf_hashes(leaves))
    return sign_checkpoint(checkpoint, setup.log_signer)


async def test_a_forked_or_rolled_back_broker_log_is_refused(
    client: httpx.AsyncClient,
    police: tuple[AgencySetup, BuiltConnector],
    town: tuple[Path, dict[str, Any]],
) -> None:
    setup, built = police
    ref = await _matched_ref(client, setup, built, _known_to_police(town[1]))
    history = _tree(12, b"main")
    fork = history[:4] + _tree(4, b"fork")

    async def send(
        note: str, proof: list[bytes] | None = None, proof_from: int | None = None
    ) -> httpx.Response:
        encoded = None if proof is None else [base64.b64encode(h).decode() for h in proof]
        request = _fetch(
            {ref: ["police.callouts_12m"]},
            broker_checkpoint=note,
            broker_consistency_proof=encoded,
            broker_consistency_from=proof_from,
        )
        return await client.post(
            "/v1/fetch", content=setup.broker().seal(request, "police").to_bytes()
        )

    assert (await send(_note(setup, history[:8]))).status_code == 200
    forked = await send(_note(setup, fork))
    assert forked.status_code == 409
    assert forked.json()["type"] == "urn:junction:problem:broker-checkpoint-inconsistent"
    # An older checkpoint right after a newer one is a request overtaken in flight...
    assert (await send(_note(setup, history[:6]))).status_code == 200
    # ...but its size is now known: another root there is a fork.
    forked_older = await send(_note(setup, history[:5] + _tree(1, b"fork")))
    assert forked_older.status_code == 409
    assert "forked" in forked_older.json()["detail"]
    bad_proof = consistency_proof(8, 12, _reader(_tree(12, b"other")))
    assert (await send(_note(setup, history), bad_proof)).status_code == 409
    good_proof = consistency_proof(8, 12, _reader(history))
    answer = await send(_note(setup, history), good_proof)
    assert answer.status_code == 200
    # Every answer says which checkpoint the connector holds, for the next proof to start.
    assert _open(setup, built, answer.content, FetchResponse).broker_checkpoint_size == 12
    raw = setup.broker().seal(_match(_subject(_known_to_police(town[1]))), "police").to_bytes()
    matched = _open(
        setup, built, (await client.post("/v1/match", content=raw)).content, MatchResponse
    )
    assert matched.broker_checkpoint_size == 12
    # A proof may start at any size the connector has seen: here 6, not its newest.
    longer = _tree(16, b"main")
    from_six = consistency_proof(6, 16, _reader(longer))
    assert (await send(_note(setup, longer), from_six, proof_from=6)).status_code == 200
    # The newest checkpoint is kept in the state directory, so it outlives a restart.
    stored = (setup.config_path.parent / "state" / "broker-checkpoint.note").read_text()
    assert stored.split("\n")[:3] == _note(setup, longer).split("\n")[:3]
    unsigned = _note(setup, longer).replace(LOG_KEY_NAME + " ", "someone.else ")
    invalid = await send(unsigned)
    assert invalid.status_code == 400
    assert invalid.json()["type"] == "urn:junction:problem:broker-checkpoint-invalid"
    log = built.audit.log
    reasons = [r for i in range(log.store.size()) for r in log.get(i).fields.get("reasons", [])]
    assert reasons.count("broker-checkpoint-inconsistent") == 3
    assert reasons.count("broker-checkpoint-invalid") == 1


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        ("garbage", "not a database"),
        ("dropped", "table INCIDENT not found"),
    ],
)
async def test_a_damaged_database_makes_the_connector_not_ready(
    tmp_path: Path, town: tuple[Path, dict[str, Any]], damage: str, words: str
) -> None:
    own_town = tmp_path / "town"
    own_town.mkdir()
    database = own_town / "police.db"
    database.write_bytes((town[0] / "police.db").read_bytes())
    setup = configure_agency(tmp_path, own_town, "police")
    built = build_connector(
        load_service_config(setup.config_path), ConnectorSettings(), environ=setup.environ
    )
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=built.app), base_url="http://police"
        ) as client:
            before = await client.get("/ready")
            if damage == "garbage":
                database.write_bytes(b"this is no longer a database\n" * 200)
            else:
                with sqlite3.connect(database) as connection:
                    connection.execute("DROP TABLE INCIDENT")
            after = await client.get("/ready")
            # A failed probe leaves exchanges as they were: the source's own error, no 500.
            subject = _subject(_known_to_police(town[1]))
            match = await client.post(
                "/v1/match", content=setup.broker().seal(_match(subject), "police").to_bytes()
            )
    finally:
        built.close()
    assert before.status_code == 200
    assert after.status_code == 503
    assert after.headers["content-type"] == "application/problem+json"
    problem = after.json()
    assert problem["type"] == "urn:junction:problem:not-ready"
    assert words in problem["detail"]
    assert "Traceback" not in after.text
    assert match.status_code == 503
    assert match.json()["type"] == "urn:junction:problem:source-unavailable"


async def test_an_aggregate_over_no_rows_is_withheld_as_not_held(
    client: httpx.AsyncClient,
    police: tuple[AgencySetup, BuiltConnector],
    town: tuple[Path, dict[str, Any]],
) -> None:
    setup, built = police
    with sqlite3.connect(town[0] / "police.db") as connection:
        quiet = {
            key
            for (key,) in connection.execute(
                "SELECT PERSON_ID FROM PERSON WHERE PERSON_ID NOT IN "
                "(SELECT PERSON_ID FROM INCIDENT)"
            )
        }
    people = {p["person_id"]: p for p in town[1]["people"]}
    person = next(
        people[pid]
        for key, pid in sorted(town[1]["agencies"]["police"].items())
        if key in quiet
        and people[pid]["nhs_number"]
        and people[pid]["records"].get("police") == key
    )
    ref = await _matched_ref(client, setup, built, person)
    asked = ["police.last_incident_date", "police.callouts_12m"]
    raw = setup.broker().seal(_fetch({ref: asked}), "police").to_bytes()
    response = await client.post("/v1/fetch", content=raw)
    answer = _open(setup, built, response.content, FetchResponse)
    [facts] = answer.persons
    # A count over no rows is 0; the latest date of no incidents is not held, not null.
    assert [(f.field, f.value) for f in facts.facts] == [("police.callouts_12m", 0)]
    assert [(w.field, w.code) for w in facts.withheld] == [
        ("police.last_incident_date", "not-held")
    ]
    assert built.audit.log.get(1).fields["fields_released"] == ["police.callouts_12m"]


def _respelt(ref: str) -> list[str]:
    """Other spellings that decode to the same sealed bytes under lenient base64."""
    return [ref + "==", ref[:4] + "\n" + ref[4:], ref + "*", ref[:5] + "." + ref[5:]]


async def test_a_reference_spelt_otherwise_finds_nobody(
    client: httpx.AsyncClient,
    police: tuple[AgencySetup, BuiltConnector],
    town: tuple[Path, dict[str, Any]],
) -> None:
    # Released under another spelling, a person's data would be recorded under a
    # subject reference that a search of the agency's log by their reference misses.
    setup, built = police
    ref = await _matched_ref(client, setup, built, _known_to_police(town[1]))
    for spelling in _respelt(ref):
        raw = setup.broker().seal(_fetch({spelling: POLICE_FIELDS}), "police").to_bytes()
        response = await client.post("/v1/fetch", content=raw)
        assert response.status_code == 200, response.text
        [person] = _open(setup, built, response.content, FetchResponse).persons
        assert person.facts == [], repr(spelling)
        assert {w.code for w in person.withheld} == {"unknown-person"}
