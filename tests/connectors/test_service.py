"""The connector over HTTP: signed answers, exactly what was asked, errors as problems."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy.exc import OperationalError

from connectors.errors import SourceUnavailable
from connectors.protocol.keys import public_key_to_b64
from connectors.protocol.messages import FetchResponse, Manifest, MatchResponse, Subject
from connectors.service import AuditKind
from tests.connectors.service_kit import (
    AS_OF,
    POLICE_FIELDS,
    MemorySource,
    build_rig,
    fetch_request,
    match_request,
    police_people,
)

pytestmark = pytest.mark.anyio


async def test_manifest_is_signed_and_lists_offered_fields() -> None:
    rig = build_rig()
    async with rig.client() as client:
        response = await client.get("/v1/manifest")
    assert response.status_code == 200
    manifest = rig.open_answer(response.content, Manifest)
    assert manifest.agency_id == "police"
    assert manifest.public_key == public_key_to_b64(rig.agency_key.public_key)
    assert manifest.key_id == rig.agency_key.key_id
    assert {(f.name, f.type, f.sensitivity) for f in manifest.fields} == {
        (f.name, f.type, f.sensitivity) for f in POLICE_FIELDS
    }


async def test_match_returns_refs_and_household_but_no_facts() -> None:
    rig = build_rig()
    request = match_request()
    async with rig.client() as client:
        response = await client.post(
            "/v1/match", content=rig.broker.seal(request, "police").to_bytes()
        )
    assert response.status_code == 200
    answer = rig.open_answer(response.content, MatchResponse)
    assert answer.query_id == request.query_id
    assert answer.status == "matched"
    [candidate] = answer.candidates
    assert candidate.ref == "pol-0001-ann"
    # Bob is under live investigation: left out, not named as refused.
    assert [m.ref for m in candidate.household] == ["pol-0003-cat"]
    assert b"police.callouts_12m" not in response.content
    [event] = rig.audit.events
    assert event.kind is AuditKind.MATCH
    assert event.refs == ("pol-0001-ann", "pol-0003-cat")
    assert event.reasons == ("person:live-investigation",)
    assert event.query_id == request.query_id


async def test_match_with_no_record_says_so() -> None:
    rig = build_rig()
    request = match_request(subject=Subject(given_name="Nobody", family_name="Here"))
    async with rig.client() as client:
        response = await client.post(
            "/v1/match", content=rig.broker.seal(request, "police").to_bytes()
        )
    answer = rig.open_answer(response.content, MatchResponse)
    assert answer.status == "no_record"
    assert answer.candidates == []


async def test_fetch_returns_exactly_the_fields_asked_with_as_of_and_digest() -> None:
    rig = build_rig()
    request = fetch_request({"pol-0001-ann": ["police.callouts_12m"]})
    async with rig.client() as client:
        response = await client.post(
            "/v1/fetch", content=rig.broker.seal(request, "police").to_bytes()
        )
    assert response.status_code == 200
    answer = rig.open_answer(response.content, FetchResponse)
    assert answer.decision_digest == request.decision_digest
    assert answer.exchange_id == request.exchange_id
    [person] = answer.persons
    assert [(f.field, f.value, f.as_of) for f in person.facts] == [
        ("police.callouts_12m", 5, AS_OF)
    ]
    assert person.withheld == []
    # The source itself was only asked for that field of that person.
    assert rig.source.reads[-1] == ("fetch", ["pol-0001-ann"], ["police.callouts_12m"])
    assert b"domestic_abuse" not in response.content
    event = rig.audit.events[-1]
    assert event.kind is AuditKind.FETCH
    assert event.fields_released == ("police.callouts_12m",)
    assert event.decision_digest == request.decision_digest


async def test_fetch_withholds_what_is_not_offered_not_held_or_unknown() -> None:
    rig = build_rig()
    request = fetch_request(
        {
            "pol-0003-cat": [
                "police.missing_episodes_12m",
                "police.callouts_12m",
                "health.gp_registered",
                "police.missing_episodes_12m",
            ],
            "pol-9999-zed": ["police.callouts_12m"],
        }
    )
    async with rig.client() as client:
        response = await client.post(
            "/v1/fetch", content=rig.broker.seal(request, "police").to_bytes()
        )
    answer = rig.open_answer(response.content, FetchResponse)
    cat, zed = answer.persons
    assert [(f.field, f.value) for f in cat.facts] == [("police.missing_episodes_12m", 1)]
    assert {(w.field, w.code) for w in cat.withheld} == {
        ("police.callouts_12m", "not-held"),
        ("health.gp_registered", "not-offered"),
    }
    assert zed.facts == []
    assert [(w.field, w.code) for w in zed.withheld] == [("police.callouts_12m", "unknown-person")]
    assert "health.gp_registered" not in rig.source.reads[-1][2]


async def test_fetch_of_no_fields_reads_no_values() -> None:
    rig = build_rig()
    request = fetch_request({"pol-0001-ann": []})
    async with rig.client() as client:
        response = await client.post(
            "/v1/fetch", content=rig.broker.seal(request, "police").to_bytes()
        )
    answer = rig.open_answer(response.content, FetchResponse)
    assert answer.persons[0].facts == []
    assert [read[0] for read in rig.source.reads] == ["flags"]


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (OperationalError("SELECT 1", {}, Exception("connection refused")), "source-unavailable"),
        (OSError("disk gone"), "source-unavailable"),
        (SourceUnavailable("the database is down"), "source-unavailable"),
    ],
)
async def test_source_failure_is_a_503_problem_never_a_traceback(
    failure: Exception, code: str
) -> None:
    source = MemorySource(police_people(), POLICE_FIELDS)
    source.fail_with = failure
    rig = build_rig(source=source)
    request = fetch_request({"pol-0001-ann": ["police.callouts_12m"]})
    async with rig.client() as client:
        response = await client.post(
            "/v1/fetch", content=rig.broker.seal(request, "police").to_bytes()
        )
        ready = await client.get("/ready")
    assert response.status_code == 503
    problem = response.json()
    assert problem["type"] == f"urn:junction:problem:{code}"
    assert "Traceback" not in response.text
    assert "SELECT" not in response.text
    assert ready.status_code == 200  # no probe configured: readiness is the process


class SlowSource(MemorySource):
    def flags(self, refs: list[str]) -> dict[str, frozenset[str]]:
        time.sleep(0.5)
        return super().flags(refs)


async def test_a_slow_source_times_out_as_a_problem() -> None:
    rig = build_rig(source=SlowSource(police_people(), POLICE_FIELDS), source_timeout_seconds=0.05)
    request = fetch_request({"pol-0001-ann": ["police.callouts_12m"]})
    async with rig.client() as client:
        response = await client.post(
            "/v1/fetch", content=rig.broker.seal(request, "police").to_bytes()
        )
    assert response.status_code == 504
    assert response.json()["type"] == "urn:junction:problem:source-timeout"


async def test_ready_reports_an_unreachable_source() -> None:
    rig = build_rig()

    def probe() -> None:
        raise OperationalError("SELECT 1", {}, Exception("no route to host"))

    from connectors.service import create_connector_app

    app = create_connector_app(rig.service, broker_name="broker", ready_probe=probe)
    import httpx

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://c"
    ) as client:
        response = await client.get("/ready")
        health = await client.get("/health")
    assert response.status_code == 503
    assert response.json()["type"] == "urn:junction:problem:source-unavailable"
    assert health.json() == {"status": "ok", "agency": "police"}


async def test_metrics_count_outcomes_and_time_the_source() -> None:
    rig = build_rig()
    async with rig.client() as client:
        await client.post(
            "/v1/match", content=rig.broker.seal(match_request(), "police").to_bytes()
        )
        await client.post(
            "/v1/fetch",
            content=rig.broker.seal(
                fetch_request({"pol-0001-ann": ["police.callouts_12m"]}), "police"
            ).to_bytes(),
        )
        text = (await client.get("/metrics")).text
    assert 'junction_connector_requests_total{endpoint="match",outcome="matched"} 1.0' in text
    assert 'junction_connector_requests_total{endpoint="fetch",outcome="ok"} 1.0' in text
    assert 'junction_connector_request_seconds_count{endpoint="fetch"} 1.0' in text
    assert 'junction_connector_source_seconds_count{operation="fetch"} 1.0' in text


async def test_oversized_and_non_json_bodies_are_refused() -> None:
    rig = build_rig()
    async with rig.client() as client:
        big = await client.post("/v1/match", content=b"x" * 2_000_000)
        text = await client.post(
            "/v1/match", content=b"hello", headers={"content-type": "text/plain"}
        )
    assert big.status_code == 413
    assert text.status_code == 415


async def test_a_slow_source_does_not_block_other_requests() -> None:
    rig = build_rig(source=SlowSource(police_people(), POLICE_FIELDS))
    request = fetch_request({"pol-0001-ann": ["police.callouts_12m"]})
    async with rig.client() as client:
        slow = asyncio.create_task(
            client.post("/v1/fetch", content=rig.broker.seal(request, "police").to_bytes())
        )
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        health = await client.get("/health")
        waited = time.perf_counter() - started
        assert not slow.done()
        fetched = await slow
    assert health.status_code == 200
    assert waited < 0.3
    assert fetched.status_code == 200
