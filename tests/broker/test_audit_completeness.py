"""After 500 family queries, every exchange that crossed a boundary is in the log once.

The broker's entries are checked against what the caseworkers received and against the
six connectors' own logs (each connector records every match and fetch it served or
refused, signed with its own key), and every log verifies from scratch.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from audit import verify_store
from audit.search import SearchQuery
from audit.verify import Report
from tests.broker.test_family_query import _query
from tests.broker.town_kit import Region, region, subject_of

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

QUERIES = 500
CONCURRENCY = 16


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def town(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Region]:
    root: Path = tmp_path_factory.mktemp("completeness")
    async with region(root, 400, agency_timeout_seconds=20, query_deadline_seconds=40) as r:
        yield r


def _bodies(town: Region) -> list[tuple[dict[str, Any], str]]:
    """A realistic mix: most about known people, some refused, some about nobody."""
    rng = random.Random(500)
    people = [p for p in town.truth["people"] if p["records"]]
    bodies: list[tuple[dict[str, Any], str]] = []
    for number in range(QUERIES):
        person = rng.choice(people)
        roll = number % 10
        if roll == 7:  # a stranger no agency holds
            stranger = {**person, "given_name": "Zebedee", "family_name": f"Nobody{number}"}
            stranger["nhs_number"] = None
            bodies.append((_query(stranger), "social_worker"))
        elif roll == 8:  # refused at submission: the job may not use this purpose
            bodies.append((_query(person, purpose="child_protection_enquiry"), "early_help_worker"))
        else:
            bodies.append((_query(person, subject=subject_of(person)), "social_worker"))
    return bodies


def _all(log: Any, **filters: Any) -> list[Any]:
    found: list[Any] = []
    before = None
    while True:
        page = log.search(SearchQuery(before=before, limit=500, **filters))
        found.extend(page.entries)
        if page.next_before is None:
            return found
        before = page.next_before


async def test_every_exchange_of_500_queries_is_logged_exactly_once(town: Region) -> None:
    bodies = _bodies(town)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def ask(body: dict[str, Any], job: str) -> dict[str, Any]:
        async with gate:
            response = await town.client.post(
                "/v1/family-queries", json=body, headers=town.headers(job_role=job)
            )
        assert response.status_code == 200, response.text
        return dict(response.json())

    views = await asyncio.gather(*(ask(body, job) for body, job in bodies))
    assert len({v["query_id"] for v in views}) == QUERIES
    assert {v["status"] for v in views} >= {"complete", "refused"}

    audit = town.foundation.audit
    broker_entries = _all(audit)
    by_query: dict[str, list[Any]] = {}
    for entry in broker_entries:
        query_id = entry.fields.get("query_id")
        if query_id:
            by_query.setdefault(query_id, []).append(entry)

    released = 0
    for view in views:
        entries = by_query[view["query_id"]]
        kinds = Counter(e.kind for e in entries)
        # What the caseworker holds is exactly what the log holds for the query.
        assert sorted(e.index for e in entries) == view["receipt"]["entries"]
        assert kinds["release"] == 1
        assert kinds["query_submitted"] + kinds["refusal"] == 1
        asked = [a for a in view["agencies"] if a["elapsed_ms"] is not None]
        assert kinds["match"] == len(asked)
        fetched = {e.fields["counterparty_agency"] for e in entries if e.kind == "fetch"}
        for member in view["members"]:
            for domain_facts in member["facts"].values():
                for fact in domain_facts:
                    released += 1
                    agency = fact["source_agency"]
                    assert agency in fetched
                    fetch = next(
                        e
                        for e in entries
                        if e.kind == "fetch" and e.fields["counterparty_agency"] == agency
                    )
                    assert fact["field"] in fetch.fields["fields_released"]
    assert released > 1000

    # The connectors' own logs saw exactly the exchanges the broker logged.
    for agency, connector in town.connectors.items():
        local = _all(connector.audit.log)
        local_by_query = Counter(e.fields.get("query_id") for e in local)
        broker_by_query = Counter(
            e.fields["query_id"]
            for e in broker_entries
            if e.kind in ("match", "fetch") and e.fields.get("counterparty_agency") == agency
        )
        assert local_by_query == broker_by_query, agency

    # Every log verifies from scratch: indexes contiguous, leaves and checkpoints sound.
    report: Report = verify_store(audit.store, audit._signer.verifier())
    assert report.ok, report.first
    assert report.entries == len(broker_entries)
    assert sorted(e.index for e in broker_entries) == list(range(len(broker_entries)))
    for agency, connector in town.connectors.items():
        log = connector.audit.log
        local_report = verify_store(log.store, log._signer.verifier())
        assert local_report.ok, (agency, local_report.first)
