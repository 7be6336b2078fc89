"""Oversight of real family queries: six real connectors on the demo town, a real broker.

The audit entries here are written by the query flow itself; the IG officer finds them
from the person's identifiers, reports them, and never sees an agency fact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from broker.identity.principal import Role
from tests.broker.town_kit import Region, known_to, region, subject_of

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def town(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Region]:
    root: Path = tmp_path_factory.mktemp("region")
    async with region(root, 600, agency_timeout_seconds=1.5, query_deadline_seconds=4.0) as r:
        yield r


def _person(town: Region) -> dict[str, Any]:
    for person in known_to(town.truth, 3):
        if person.get("nhs_number"):
            return person
    raise AssertionError("the town has no person known to three agencies with an NHS number")


def _query(person: dict[str, Any]) -> dict[str, Any]:
    return {
        "subject": subject_of(person),
        "purpose": "child_in_need_assessment",
        "legal_basis": "public_task",
        "gateway": "ca1989_s17",
        "case_reference": "CIN-2026-0001",
        "justification": "Referral from school about attendance and welfare.",
        "conditions": ["art9_2_g_para18", "art10_para18"],
        "consent_not_sought_reason": "would_prejudice_protection",
    }


@pytest.fixture(scope="module")
async def asked(town: Region) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    person = _person(town)
    views = []
    for _ in range(2):
        response = await town.client.post(
            "/v1/family-queries", json=_query(person), headers=town.headers()
        )
        assert response.status_code == 200, response.text
        views.append(response.json())
    return person, views


def _officer(town: Region) -> dict[str, str]:
    return town.headers(Role.IG_OFFICER, job_role=None, name="Ivy Officer")


async def test_an_officer_finds_a_persons_queries_from_their_nhs_number(
    town: Region, asked: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    person, views = asked
    response = await town.client.post(
        "/v1/audit/search",
        json={"identifiers": [{"kind": "nhs_number", "value": person["nhs_number"]}]},
        headers=_officer(town),
    )
    assert response.status_code == 200, response.text
    entries = response.json()["entries"]
    assert {e["query_id"] for e in entries} == {v["query_id"] for v in views}
    kinds = {e["kind"] for e in entries}
    assert "release" in kinds
    assert kinds & {"query_submitted", "refusal"}
    submitted = next(e for e in entries if e["kind"] in ("query_submitted", "refusal"))
    assert submitted["private"]["case_reference"] == "CIN-2026-0001"
    assert submitted["actor"].startswith("dev:council:")


async def test_a_fetched_record_is_found_by_its_local_reference(
    town: Region, asked: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    _, views = asked
    view = views[0]
    fetched = {a["agency_id"] for a in view["agencies"] if a["status"] == "ok"}
    records = [r for m in view["members"] for r in m["records"] if r["agency_id"] in fetched]
    facts = [m for m in view["members"] if m["facts"]]
    if not facts:
        pytest.fail(f"the query released no facts to look for: {view['agencies']}")
    member = facts[0]
    record = next(r for r in member["records"] if r["agency_id"] in member["facts"])
    assert record in records
    response = await town.client.post(
        "/v1/audit/search",
        json={
            "identifiers": [
                {"kind": "local_ref", "value": f"{record['agency_id']}:{record['ref']}"}
            ],
            "kind": "fetch",
        },
        headers=_officer(town),
    )
    entries = response.json()["entries"]
    assert entries, "the fetch from that agency is filed under the record's reference"
    assert {e["counterparty_agency"] for e in entries} == {record["agency_id"]}
    released = {f["field"] for f in member["facts"][record["agency_id"]]}
    assert released <= set(entries[0]["fields_released"])


async def test_subject_access_report_lists_every_agency_asked(
    town: Region, asked: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    person, views = asked
    body = {"identifiers": [{"kind": "nhs_number", "value": person["nhs_number"]}]}
    response = await town.client.post(
        "/v1/oversight/subject-access", json=body, headers=_officer(town)
    )
    assert response.status_code == 200, response.text
    report = response.json()
    asked_agencies = {
        a["agency_id"] for a in views[0]["agencies"] if a["status"] not in ("withheld",)
    }
    assert set(report["by_agency"]) == asked_agencies
    # Besides the queries, the report lists the officers' own earlier reads of the
    # person's records (audit_access), which belong to no query.
    queried = [a for a in report["accesses"] if a["kind"] != "audit_access"]
    assert {a["query_id"] for a in queried} == {v["query_id"] for v in views}
    assert all(a["who_agency"] == "council" for a in report["accesses"])


async def test_an_officer_sees_no_facts_and_a_caseworker_no_audit(
    town: Region, asked: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    person, views = asked
    as_officer = await town.client.post(
        "/v1/family-queries", json=_query(person), headers=_officer(town)
    )
    assert as_officer.status_code == 403
    receipt = await town.client.get(
        f"/v1/family-queries/{views[0]['query_id']}/receipt", headers=_officer(town)
    )
    assert receipt.status_code == 200, receipt.text
    assert "facts" not in receipt.text
    assert person["family_name"] not in receipt.text
    assert person["nhs_number"] not in receipt.text
    for method, path in (
        ("POST", "/v1/audit/search"),
        ("GET", "/v1/audit/checkpoint"),
        ("POST", "/v1/oversight/subject-access"),
        ("GET", "/v1/oversight/break-glass"),
        ("GET", "/v1/oversight/anomalies"),
    ):
        response = await town.client.request(
            method,
            path,
            json={"identifiers": [{"kind": "nhs_number", "value": person["nhs_number"]}]},
            headers=town.headers(),
        )
        assert response.status_code == 403, (path, response.text)


async def test_metrics_count_the_queries_and_exchanges(
    town: Region, asked: tuple[dict[str, Any], list[dict[str, Any]]]
) -> None:
    _, views = asked
    response = await town.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    outcome = "refused" if views[0]["status"] == "refused" else "answered"
    assert f'junction_family_queries_total{{status="{outcome}"}} 2.0' in text
    assert "junction_policy_decision_seconds_count" in text
    assert "junction_audit_append_seconds_count" in text
    for agency in views[0]["agencies"]:
        if agency["status"] != "withheld" and agency["elapsed_ms"] is not None:
            assert f'junction_exchange_seconds_count{{agency="{agency["agency_id"]}"' in text
            assert f'agency="{agency["agency_id"]}",kind="match"' in text


async def test_ready_when_everything_answers(town: Region) -> None:
    response = await town.client.get("/ready")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["audit_log"].startswith("ok (")
    assert checks["policy"].startswith("ok (bundle ")


async def test_a_query_by_name_and_birth_date_is_found_from_the_nhs_number(town: Region) -> None:
    """The caseworker typed no identifier; the agencies that hold the person's NHS
    number sent its consent reference, so the officer still finds the exchanges."""
    person = next(
        p
        for p in known_to(town.truth, 3)
        if p.get("nhs_number") and "health" in p["records"] and p is not _person(town)
    )
    body = {**_query(person), "subject": subject_of(person, identifiers=False)}
    asked = await town.client.post("/v1/family-queries", json=body, headers=town.headers())
    assert asked.status_code == 200, asked.text
    view = asked.json()
    assert any(r["agency_id"] == "health" for m in view["members"] for r in m["records"])

    nhs = {"identifiers": [{"kind": "nhs_number", "value": person["nhs_number"]}]}
    report = await town.client.post(
        "/v1/oversight/subject-access", json=nhs, headers=_officer(town)
    )
    found = await town.client.post(
        "/v1/audit/search", json={**nhs, "kind": "fetch"}, headers=_officer(town)
    )

    assert report.status_code == 200, report.text
    # (Queries about the person's household find them too: the agencies disclosed them.)
    assert view["query_id"] in {a["query_id"] for a in report.json()["accesses"]}
    assert "health" in report.json()["by_agency"]
    fetched = {e["counterparty_agency"] for e in found.json()["entries"]}
    assert "health" in fetched
