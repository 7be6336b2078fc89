"""Pages and API endpoints wait for the database off the event loop.

Every request of every caseworker shares one event loop: a page that called the
database on it would hold up every family query in flight until its answer came back.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.identity.principal import Role
from tests.broker.foundation_kit import IssuerServer, running_broker

pytestmark = pytest.mark.anyio

SLOW = 0.5  # seconds: a database under load


async def _sign_in(web: httpx.AsyncClient, token: str) -> None:
    page = await web.get("/web/sign-in")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    signed = await web.post("/web/sign-in", data={"csrf": found.group(1), "access_token": token})
    assert signed.status_code == 303, signed.text


def _slowed(service: object, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = getattr(service, name)

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(SLOW)
        return real(*args, **kwargs)

    monkeypatch.setattr(service, name, slow)


async def _finishing_order(web: httpx.AsyncClient, slow_page: str) -> list[tuple[str, int]]:
    """Ask for ``slow_page``, then for /health while it waits; in the order answered."""
    finished: list[tuple[str, int]] = []

    async def fetch(path: str, after: float) -> None:
        await asyncio.sleep(after)
        started = time.monotonic()
        answer = await web.get(path)
        finished.append((path, answer.status_code))
        if path == "/health":
            assert time.monotonic() - started < SLOW / 2, "health waited for the slow page"

    await asyncio.gather(fetch(slow_page, 0.0), fetch("/health", SLOW / 5))
    return finished


# (page, the service it waits on, that service's method, how the caller signs in)
CASES = [
    ("/web/home", "follow_up", "queries", "cookie"),
    ("/web/sign-in", "registry", "list_agencies", None),
    ("/v1/family-queries", "follow_up", "queries", "bearer"),
]


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
async def test_a_request_waiting_on_the_database_holds_up_no_other_request(
    tmp_path: Path,
    dev_issuer: IssuerServer,
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[str, str, str, str | None],
) -> None:
    page, service, method, signed_in = case
    async with running_broker(tmp_path, dev_issuer) as broker:
        if signed_in == "cookie":
            await _sign_in(broker.client, broker.token(Role.CASEWORKER))
        elif signed_in == "bearer":
            broker.client.headers.update(broker.as_(Role.CASEWORKER))
        _slowed(getattr(broker.app.state, service), method, monkeypatch)
        order = await _finishing_order(broker.client, page)
    assert order == [("/health", 200), (page, 200)]
