"""Agency connectors killed, hung and failing while caseworkers keep asking.

The broker and the six connectors run as processes. During a load of concurrent family
queries one connector is broken: killed with SIGKILL, frozen with SIGSTOP, or left
running over a database that can no longer be read. Every query still answers within
its deadline, with the broken agency reported as ``error`` or ``timeout`` and the others
answering as usual; nothing a caseworker receives lacks its audit entry; and once the
connector is back, queries are whole again without touching the broker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from tests.faults.fault_kit import (
    Answer,
    Region,
    ask,
    assert_contiguous,
    assert_released_with_audit,
    log_entries,
    query_bodies,
    running_region,
    status_of,
    verify_log,
)

pytestmark = pytest.mark.slow
DEADLINE = 5.0
AGENCY_TIMEOUT = 2.5
# Beyond the deadline a query still writes its release entry and renders the view; on a
# shared two-core machine that takes up to a couple of seconds under this load.
GRACE = 2.5
CLIENTS = 8
QUERIES = 40
BREAK_AFTER = 6  # answers received before the connector is broken
# What an agency that answers says: "ambiguous" when its records could each be the subject.
HEALTHY = {"ok", "no_record", "ambiguous"}
BROKEN = {"error", "timeout"}


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    environ = {
        "JUNCTION_QUERY_DEADLINE_SECONDS": str(DEADLINE),
        "JUNCTION_AGENCY_TIMEOUT_SECONDS": str(AGENCY_TIMEOUT),
    }
    with running_region(tmp_path_factory.mktemp("faults"), environ=environ) as running:
        yield running


@contextmanager
def killed(region: Region, agency: str) -> Iterator[Callable[[], None]]:
    process = region.process(f"connector-{agency}")
    yield lambda: os.kill(process.pid, signal.SIGKILL)
    region.restart_connector(agency)


@contextmanager
def hung(region: Region, agency: str) -> Iterator[Callable[[], None]]:
    process = region.process(f"connector-{agency}")
    yield lambda: os.kill(process.pid, signal.SIGSTOP)
    os.kill(process.pid, signal.SIGCONT)


@contextmanager
def unreadable_source(region: Region, agency: str) -> Iterator[Callable[[], None]]:
    """The agency's database file overwritten with garbage, then put back."""
    path = region.layout.town / f"{agency.replace('-', '_')}.db"
    original = path.read_bytes()

    def corrupt() -> None:
        with path.open("r+b") as handle:
            handle.write(b"\x00not a database\x00" * 64)

    try:
        yield corrupt
    finally:
        path.write_bytes(original)


FAULTS = {"killed": killed, "hung": hung, "unreadable_source": unreadable_source}


@dataclass(frozen=True)
class Timed:
    sent: float
    answer: Answer


async def _load_with_fault(
    region: Region, url: str, fault: Callable[[], None]
) -> tuple[list[Timed], float]:
    token = region.token(url)
    bodies = query_bodies(region.truth, QUERIES)
    start = time.monotonic()
    answers: list[Timed] = []
    broken: dict[str, float] = {}
    next_body = iter(bodies)

    async def caseworker(client: httpx.AsyncClient) -> None:
        for body in next_body:
            sent = time.monotonic() - start
            answers.append(Timed(sent, await ask(client, url, token, body)))
            if len(answers) >= BREAK_AFTER and not broken:
                fault()
                broken["at"] = time.monotonic() - start

    async with httpx.AsyncClient(timeout=60.0) as client:
        await asyncio.gather(*(caseworker(client) for _ in range(CLIENTS)))
    return answers, broken["at"]


async def _until_whole(region: Region, url: str, limit: float = 40.0) -> dict[str, str]:
    """Ask until every agency answers as usual again; return the last statuses."""
    token = region.token(url)
    body = query_bodies(region.truth, 1)[0]
    started = time.monotonic()
    statuses: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=60.0) as client:
        while time.monotonic() - started < limit:
            answer = await ask(client, url, token, body)
            if answer.view is not None:
                statuses = {a["agency_id"]: a["status"] for a in answer.view["agencies"]}
                if set(statuses.values()) <= HEALTHY:
                    return statuses
            await asyncio.sleep(1.0)
    raise AssertionError(f"queries were not whole again within {limit} s: {statuses}")


@pytest.mark.parametrize(
    ("fault", "agency"),
    [("killed", "health"), ("hung", "education"), ("unreadable_source", "housing")],
)
def test_every_query_answers_in_time_with_the_broken_agency_reported(
    region: Region, fault: str, agency: str
) -> None:
    url = region.brokers["broker"]
    with FAULTS[fault](region, agency) as break_it:
        timed, broken_at = asyncio.run(_load_with_fault(region, url, break_it))
    whole_again = asyncio.run(_until_whole(region, url))

    assert len(timed) == QUERIES
    for item in timed:
        answer = item.answer
        assert answer.status == 200, f"{answer.status}: {answer.body}"
        assert answer.elapsed < DEADLINE + GRACE, f"a query took {answer.elapsed:.1f} s"
        view = answer.view
        assert view is not None
        for other in view["agencies"]:
            if other["agency_id"] != agency:
                assert other["status"] in HEALTHY, f"{other['agency_id']}: {other}"
        if item.sent > broken_at + 0.1:
            assert status_of(view, agency) in BROKEN, f"{agency} after the fault: {view}"
            assert not any(
                fact["source_agency"] == agency
                for member in view["members"]
                for facts in member["facts"].values()
                for fact in facts
            ), f"facts from {agency} after it broke"
    after = [t for t in timed if t.sent > broken_at + 0.1]
    assert len(after) >= QUERIES // 2, "too few queries ran while the connector was broken"
    assert whole_again[agency] in HEALTHY

    entries = log_entries(region.database_url())
    assert assert_released_with_audit([t.answer for t in timed], entries) == QUERIES


def test_the_log_verifies_after_the_faults(region: Region) -> None:
    """Runs after the faults above (same region): the log is whole and verifies."""
    size = assert_contiguous(region.database_url())
    assert size > QUERIES
    verify_log(region)
