"""The broker's PostgreSQL unreachable for a few seconds, under a load of queries.

A TCP proxy between the broker and PostgreSQL resets every connection (queries in
flight included) and refuses new ones, then lets them through again. During the outage
queries fail closed with a clear 503 problem and release nothing; afterwards the same
broker process answers again without a restart, and its log verifies with every
released answer in it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.faults.fault_kit import (
    Answer,
    ask,
    assert_contiguous,
    assert_released_with_audit,
    log_entries,
    query_bodies,
    running_region,
    verify_log,
)
from tests.faults.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
DEADLINE = 5.0
CLIENTS = 6
CUT_AT = 3.0
OUTAGE_SECONDS = 4.0
RECOVERY_SECONDS = 20.0
RUN_SECONDS = CUT_AT + OUTAGE_SECONDS + RECOVERY_SECONDS
# How long caseworkers keep asking once the broker answers again.
AFTER_RECOVERY = 4.0


@dataclass(frozen=True)
class Timed:
    sent: float
    answer: Answer


async def _scenario(
    url: str, token: str, bodies: list[dict[str, Any]], proxy: TcpProxy
) -> tuple[list[Timed], float, float]:
    """Caseworkers ask without pause while the database goes away and comes back."""
    start = time.monotonic()
    answers: list[Timed] = []
    window: dict[str, float] = {}

    def running() -> bool:
        now = time.monotonic() - start
        return now < min(RUN_SECONDS, window.get("answered", RUN_SECONDS) + AFTER_RECOVERY)

    async def caseworker(client: httpx.AsyncClient, n: int) -> None:
        while running():
            sent = time.monotonic() - start
            answer = await ask(client, url, token, bodies[n % len(bodies)])
            answers.append(Timed(sent, answer))
            n += CLIENTS
            if answer.status != 200:
                await asyncio.sleep(0.2)  # a caseworker tries again after a moment
            elif "restored" in window and sent > window["restored"]:
                window.setdefault("answered", sent)

    async def operator() -> None:
        await asyncio.sleep(CUT_AT)
        proxy.cut()
        window["cut"] = time.monotonic() - start
        await asyncio.sleep(OUTAGE_SECONDS)
        proxy.restore()
        window["restored"] = time.monotonic() - start

    async with httpx.AsyncClient(timeout=30.0) as client:
        await asyncio.gather(operator(), *(caseworker(client, n) for n in range(CLIENTS)))
    return answers, window["cut"], window["restored"]


def test_queries_fail_closed_while_the_database_is_away_and_recover_after(
    tmp_path: Path, fresh_postgres: str
) -> None:
    direct = make_url(fresh_postgres)
    with TcpProxy(direct.host or "127.0.0.1", direct.port or 5432).running() as proxy:
        proxied = direct.set(host="127.0.0.1", port=proxy.port)
        environ = {
            "JUNCTION_DATABASE_URL": proxied.render_as_string(hide_password=False),
            "JUNCTION_QUERY_DEADLINE_SECONDS": str(DEADLINE),
            "JUNCTION_AGENCY_TIMEOUT_SECONDS": str(DEADLINE / 2),
        }
        with running_region(tmp_path, environ=environ) as region:
            url = region.brokers["broker"]
            bodies = query_bodies(region.truth, 40)
            timed, cut, restored = asyncio.run(_scenario(url, region.token(url), bodies, proxy))
            assert region.process("broker").poll() is None, "the broker stopped"
            # The log is read directly, not through the proxy.
            entries = log_entries(fresh_postgres)
            size = assert_contiguous(fresh_postgres)
            verify_log(region, fresh_postgres)

    answers = [t.answer for t in timed]
    for answer in answers:
        assert answer.status in (200, 503), f"{answer.status}: {answer.body}"
        if answer.status == 503:
            assert answer.content_type.startswith("application/problem+json")
            assert answer.body["detail"], "the problem must say what went wrong"
            assert "members" not in answer.body, "facts came back with a failure"
    inside = [
        t.answer for t in timed if cut + 0.2 < t.sent and t.sent + t.answer.elapsed < restored
    ]
    assert inside, "no query was asked while the database was away"
    assert {a.status for a in inside} == {503}, "a query was answered without its database"
    recovered = [t for t in timed if t.sent > restored and t.answer.status == 200]
    assert recovered, f"the broker did not answer again within {RECOVERY_SECONDS} s"
    first = min(t.sent for t in recovered)
    late = [t.answer for t in timed if t.sent > first + 1.0]
    assert late, "too few queries after recovery to judge it"
    assert {a.status for a in late} == {200}, "the broker failed again after it recovered"
    checked = assert_released_with_audit(answers, entries)
    assert checked == sum(a.status == 200 for a in answers)
    assert size == len(entries)
