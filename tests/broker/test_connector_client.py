"""The broker's connector client: retries only where safe, budgets, and the breaker."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from broker.federation.breaker import BreakerState, CircuitBreaker
from broker.federation.client import CallStatus, ConnectorClient, ConnectorEndpoint
from connectors.protocol import KeyPair, KeyRing, Signer
from connectors.protocol.messages import MatchRequest, MatchResponse, MatchStatus, Subject

pytestmark = pytest.mark.anyio

AGENCY_KEY = KeyPair.generate()
REQUEST = MatchRequest(
    query_id="q1",
    requester_agency="council",
    purpose="early_help_assessment",
    subject=Subject(given_name="Amelia", family_name="Okafor"),
)
ENDPOINT = ConnectorEndpoint("police", "http://police.test")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Script(httpx.AsyncBaseTransport):
    """Answers each request with the next scripted action."""

    def __init__(self, *actions: str) -> None:
        self.actions = list(actions)
        self.sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        action = self.actions.pop(0) if self.actions else "answer"
        if action == "refuse":
            raise httpx.ConnectError("connection refused", request=request)
        if action == "hang":
            await asyncio.sleep(10)
        if action == "500":
            return httpx.Response(500, json={"detail": "database down"}, request=request)
        answer = MatchResponse(query_id="q1", agency_id="police", status=MatchStatus.NO_RECORD)
        body = Signer(AGENCY_KEY, "police").seal(answer, "broker").to_bytes()
        return httpx.Response(200, content=body, request=request)


def _client(transport: httpx.AsyncBaseTransport) -> ConnectorClient:
    ring = KeyRing()
    ring.add("police", AGENCY_KEY.public_key)
    return ConnectorClient(
        Signer(KeyPair.generate(), "broker"),
        ring,
        transport=transport,
        breaker_threshold=2,
        breaker_reset_after=60,
    )


async def test_a_refused_connection_is_tried_once_more() -> None:
    script = Script("refuse", "answer")
    outcome = await _client(script).match(ENDPOINT, REQUEST, budget=2.0)
    assert outcome.status is CallStatus.OK
    assert outcome.message is not None
    assert outcome.message.status is MatchStatus.NO_RECORD
    assert script.sent == 2


async def test_a_hung_connector_times_out_within_the_budget_and_is_not_retried() -> None:
    script = Script("hang", "answer")
    started = asyncio.get_running_loop().time()
    outcome = await _client(script).match(ENDPOINT, REQUEST, budget=0.3)
    assert outcome.status is CallStatus.TIMEOUT
    assert asyncio.get_running_loop().time() - started < 1.0
    assert script.sent == 1


async def test_failures_open_the_circuit_so_later_calls_fail_at_once() -> None:
    script = Script("500", "500", "answer")
    client = _client(script)
    first = await client.match(ENDPOINT, REQUEST, budget=1.0)
    await client.match(ENDPOINT, REQUEST, budget=1.0)
    third = await client.match(ENDPOINT, REQUEST, budget=1.0)
    assert first.status is CallStatus.ERROR
    assert "database down" in first.detail
    assert third.detail == "circuit open"
    assert script.sent == 2
    assert client.breaker("police").state is BreakerState.OPEN


async def test_an_answer_signed_by_a_stranger_is_rejected() -> None:
    class Stranger(Script):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            answer = MatchResponse(query_id="q1", agency_id="police", status=MatchStatus.MATCHED)
            body = Signer(KeyPair.generate(), "police").seal(answer, "broker").to_bytes()
            return httpx.Response(200, content=body, request=request)

    outcome = await _client(Stranger()).match(ENDPOINT, REQUEST, budget=1.0)
    assert outcome.status is CallStatus.ERROR
    assert "envelope-unknown-key" in outcome.detail
    assert outcome.message is None


def test_a_half_open_breaker_lets_one_trial_through() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=1, reset_after=5, clock=lambda: now[0])
    breaker.record_failure()
    assert not breaker.allow()
    now[0] = 6.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
