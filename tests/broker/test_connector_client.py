"""The broker's connector client: retries only where safe, budgets, and the breaker."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from broker.federation.breaker import BreakerState, CircuitBreaker
from broker.federation.client import CallStatus, ConnectorClient, ConnectorEndpoint
from connectors.protocol import KeyPair, KeyRing, Signer
from connectors.protocol.messages import (
    FetchRequest,
    FetchResponse,
    FetchStatus,
    MatchRequest,
    MatchResponse,
    MatchStatus,
    Subject,
)

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


async def test_a_problem_detail_reaches_the_caseworker_as_one_short_line() -> None:
    # A connector's detail is shown on the caseworker's answer: it must not be a page of
    # text, nor carry line breaks or control characters into it.
    class Verbose(Script):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            detail = "database down:\n" + "\x1b[31mtrace line\r\n" * 5000
            return httpx.Response(503, json={"detail": detail}, request=request)

    outcome = await _client(Verbose()).match(ENDPOINT, REQUEST, budget=1.0)
    assert outcome.status is CallStatus.ERROR
    assert outcome.detail.startswith("HTTP 503: database down: [31mtrace line [31mtrace line")
    assert len(outcome.detail) <= 310
    assert outcome.detail.endswith("…")
    assert outcome.detail.isprintable()


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


# -- over real sockets: the pooled client the broker runs with ---------------------------


class _Server:
    """A bare HTTP/1.1 server on a real port: answers each request per ``mode``."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.connections = 0
        self.requests = 0
        self.sent = 0
        self.elsewhere = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                self.requests += 1
                if self.mode == "hang":
                    await asyncio.sleep(10)
                if self.mode.startswith("flood"):
                    await self._flood(writer, chunked=self.mode == "flood-chunked")
                    return
                extra = b""
                if self.mode == "500":
                    body = b'{"title": "Internal Server Error", "detail": "database down"}'
                    status = b"500 Internal Server Error"
                elif self.mode.startswith("redirect "):
                    body, status = b"{}", self.mode.removeprefix("redirect ").encode()
                    extra = b"location: " + self.elsewhere.encode() + b"/v1/admin\r\n"
                else:
                    answer = MatchResponse(
                        query_id="q1", agency_id="police", status=MatchStatus.NO_RECORD
                    )
                    body = Signer(AGENCY_KEY, "police").seal(answer, "broker").to_bytes()
                    status = b"200 OK"
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n" + extra + b""
                    b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _flood(self, writer: asyncio.StreamWriter, *, chunked: bool) -> None:
        """Answer with a body far larger than any connector's answer, for as long as the
        caller keeps reading it."""
        size = 256 * 1024 * 1024
        framing = b"transfer-encoding: chunked" if chunked else b"content-length: %d" % size
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + framing + b"\r\n\r\n"
        )
        piece = b" " * 65536
        self.sent = 0
        while self.sent < size:
            writer.write(b"10000\r\n" + piece + b"\r\n" if chunked else piece)
            await writer.drain()
            self.sent += len(piece)


def _pooled() -> ConnectorClient:
    ring = KeyRing()
    ring.add("police", AGENCY_KEY.public_key)
    return ConnectorClient(Signer(KeyPair.generate(), "broker"), ring, breaker_threshold=5)


async def test_calls_over_real_sockets_share_one_kept_alive_connection() -> None:
    client, server = _pooled(), _Server("answer")
    try:
        async with server as url, asyncio.timeout(10):
            endpoint = ConnectorEndpoint("police", url)
            outcomes = [await client.match(endpoint, REQUEST, 2.0) for _ in range(3)]
    finally:
        await client.aclose()
    assert [o.status for o in outcomes] == [CallStatus.OK] * 3
    assert all(o.message is not None for o in outcomes)
    assert (server.requests, server.connections) == (3, 1)


async def test_a_closed_port_is_tried_twice_then_reported_as_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = _pooled()
    try:
        outcome = await client.match(
            ConnectorEndpoint("police", f"http://127.0.0.1:{port}"), REQUEST, 2.0
        )
    finally:
        await client.aclose()
    assert outcome.status is CallStatus.ERROR
    assert outcome.detail.startswith("cannot connect")


async def test_a_connector_that_never_answers_times_out_once_within_the_budget() -> None:
    client, server = _pooled(), _Server("hang")
    try:
        async with server as url:
            started = asyncio.get_running_loop().time()
            outcome = await client.match(ConnectorEndpoint("police", url), REQUEST, 0.3)
            took = asyncio.get_running_loop().time() - started
    finally:
        await client.aclose()
    assert outcome.status is CallStatus.TIMEOUT
    assert took < 1.0
    assert server.requests == 1


async def test_a_problem_answer_over_a_real_socket_keeps_its_detail() -> None:
    client, server = _pooled(), _Server("500")
    try:
        async with server as url:
            outcome = await client.match(ConnectorEndpoint("police", url), REQUEST, 2.0)
    finally:
        await client.aclose()
    assert outcome.status is CallStatus.ERROR
    assert outcome.detail == "HTTP 500: database down"


@pytest.mark.parametrize("mode", ["flood", "flood-chunked"])
async def test_an_answer_far_larger_than_any_connector_sends_is_cut_off_and_rejected(
    mode: str,
) -> None:
    client, server = _pooled(), _Server(mode)
    try:
        async with server as url:
            started = asyncio.get_running_loop().time()
            outcome = await client.match(ConnectorEndpoint("police", url), REQUEST, 20.0)
            took = asyncio.get_running_loop().time() - started
    finally:
        await client.aclose()
    assert outcome.status is CallStatus.ERROR
    assert outcome.detail.startswith("answer rejected (answer-too-large): ")
    assert "MB" in outcome.detail
    assert outcome.rejected == "answer-too-large"
    # Cut off as it arrived: the broker did not read (and hold) the whole of it.
    assert server.sent < 64 * 1024 * 1024
    assert took < 10.0


@pytest.mark.parametrize("status", ["307 Temporary Redirect", "302 Found", "303 See Other"])
async def test_a_connector_cannot_send_the_broker_on_to_another_address(status: str) -> None:
    # The administrator registered the connector's address, and no other: a connector
    # that answers with a redirect must not make the broker call an address inside its
    # own network with a signed request.
    client, connector, inside = _pooled(), _Server(f"redirect {status}"), _Server("answer")
    try:
        async with connector as url, inside as inside_url:
            connector.elsewhere = inside_url
            outcome = await client.match(ConnectorEndpoint("police", url), REQUEST, 2.0)
    finally:
        await client.aclose()
    assert inside.requests == 0
    assert outcome.status is CallStatus.ERROR
    assert outcome.detail.startswith(f"HTTP {status[:3]}")


async def test_an_oversized_answer_through_a_transport_is_rejected() -> None:
    class Flood(Script):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            async def body() -> AsyncIterator[bytes]:
                for _ in range(4096):
                    yield b" " * 65536

            return httpx.Response(200, content=body(), request=request)

    outcome = await _client(Flood()).match(ENDPOINT, REQUEST, budget=20.0)
    assert outcome.status is CallStatus.ERROR
    assert outcome.rejected == "answer-too-large"


async def test_an_address_that_is_no_url_is_an_error_not_a_crash() -> None:
    client = _pooled()
    try:
        outcome = await client.match(ConnectorEndpoint("police", "http:///no-host"), REQUEST, 1.0)
    finally:
        await client.aclose()
    assert outcome.status is CallStatus.ERROR
    assert "is not a valid URL" in outcome.detail


class Recorded(Script):
    """Answers with a genuine signed answer of the agency, but not one to this request."""

    def __init__(self, answer: MatchResponse | FetchResponse) -> None:
        super().__init__()
        self.answer = answer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = Signer(AGENCY_KEY, "police").seal(self.answer, "broker").to_bytes()
        return httpx.Response(200, content=body, request=request)


async def test_a_signed_answer_to_another_query_is_refused_saying_so() -> None:
    old = MatchResponse(query_id="q0", agency_id="police", status=MatchStatus.MATCHED)
    outcome = await _client(Recorded(old)).match(ENDPOINT, REQUEST, budget=1.0)
    assert outcome.status is CallStatus.ERROR
    assert outcome.message is None
    assert outcome.detail == (
        "answer rejected (answer-not-for-this-request): it answers query 'q0', not 'q1'"
    )


async def test_a_signed_answer_naming_another_agency_is_refused_saying_so() -> None:
    other = MatchResponse(query_id="q1", agency_id="health", status=MatchStatus.MATCHED)
    outcome = await _client(Recorded(other)).match(ENDPOINT, REQUEST, budget=1.0)
    assert outcome.status is CallStatus.ERROR
    assert outcome.message is None
    assert outcome.detail == (
        "answer rejected (answer-not-for-this-request): it is the answer of agency 'health',"
        " not 'police'"
    )


async def test_a_signed_answer_to_another_exchange_of_the_query_is_refused_saying_so() -> None:
    request = FetchRequest(
        query_id="q1",
        exchange_id="x2",
        requester_agency="council",
        requester_role="caseworker",
        purpose="early_help_assessment",
        legal_basis="public_task",
        decision_digest="sha256:0",
        persons=[],
    )
    earlier = FetchResponse(
        query_id="q1",
        exchange_id="x1",
        agency_id="police",
        decision_digest="sha256:0",
        status=FetchStatus.OK,
    )
    outcome = await _client(Recorded(earlier)).fetch(ENDPOINT, request, budget=1.0)
    assert outcome.status is CallStatus.ERROR
    assert outcome.message is None
    assert outcome.detail == (
        "answer rejected (answer-not-for-this-request): it answers exchange 'x1', not 'x2'"
    )


async def test_a_call_with_no_time_left_is_not_sent_and_not_held_against_the_agency() -> None:
    script = Script()
    client = _client(script)
    outcomes = [await client.match(ENDPOINT, REQUEST, budget=0.0) for _ in range(3)]
    assert script.sent == 0
    assert {o.status for o in outcomes} == {CallStatus.TIMEOUT}
    assert {o.detail for o in outcomes} == {
        "not asked: the query's deadline had passed before this agency's turn"
    }
    assert {o.request_digest for o in outcomes} == {None}
    assert client.breaker("police").state is BreakerState.CLOSED
