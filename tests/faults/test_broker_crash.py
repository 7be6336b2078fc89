"""The broker killed with SIGKILL in the middle of a load, then started again.

Caseworkers keep asking throughout: queries in flight at the kill get no answer, those
asked while it is down are refused at the socket, and once it is back they are
answered again. Afterwards every answer a caseworker received has its entries in the
log, the log verifies with ``junction audit verify``, and its indexes run 0..size-1
with none repeated or skipped, although the process died between appends.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

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
    verify_log,
)

pytestmark = pytest.mark.slow
DEADLINE = 5.0
CLIENTS = 8
KILL_AFTER = 12  # answers received before the broker is killed
AFTER_RESTART = 16  # answers wanted from the restarted broker


@pytest.fixture
def region(tmp_path: Path) -> Iterator[Region]:
    environ = {
        "JUNCTION_QUERY_DEADLINE_SECONDS": str(DEADLINE),
        "JUNCTION_AGENCY_TIMEOUT_SECONDS": str(DEADLINE / 2),
    }
    with running_region(tmp_path, environ=environ) as running:
        yield running


async def _load_through_a_crash(region: Region) -> tuple[list[Answer], list[Answer], int]:
    """Answers before the kill, answers after the restart, and requests left unanswered."""
    url = region.brokers["broker"]
    token = region.token(url)
    bodies = query_bodies(region.truth, 40)
    before: list[Answer] = []
    after: list[Answer] = []
    unanswered = 0
    phase = {"name": "before"}
    enough = asyncio.Event()

    async def operator() -> None:
        await enough.wait()
        process = region.process("broker")
        os.kill(process.pid, signal.SIGKILL)
        await asyncio.to_thread(process.wait)
        phase["name"] = "down"
        await asyncio.to_thread(region.start_broker)
        phase["name"] = "after"

    async def caseworker(client: httpx.AsyncClient, n: int) -> None:
        nonlocal unanswered
        while len(after) < AFTER_RESTART:
            started_in = phase["name"]
            answer = await ask(client, url, token, bodies[n % len(bodies)])
            n += CLIENTS
            if answer.status is None:
                unanswered += 1
                await asyncio.sleep(0.3)  # the caseworker tries again in a moment
            elif started_in == "after":
                after.append(answer)
            else:
                before.append(answer)
                if len(before) >= KILL_AFTER:
                    enough.set()

    async with httpx.AsyncClient(timeout=60.0) as client:
        await asyncio.gather(operator(), *(caseworker(client, n) for n in range(CLIENTS)))
    return before, after, unanswered


def test_every_received_answer_is_in_the_log_after_a_kill_and_restart(region: Region) -> None:
    started = time.monotonic()
    before, after, unanswered = asyncio.run(_load_through_a_crash(region))
    assert time.monotonic() - started < 180

    assert len(before) >= KILL_AFTER
    assert unanswered > 0, "the kill went unnoticed: no request was left unanswered"
    for answer in [*before, *after]:
        assert answer.status == 200, f"{answer.status}: {answer.body}"
    entries = log_entries(region.database_url())
    received = [*before, *after]
    assert assert_released_with_audit(received, entries) == len(received)
    size = assert_contiguous(region.database_url())
    assert size == len(entries)
    verify_log(region)
