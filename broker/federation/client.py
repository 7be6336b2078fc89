"""The broker's side of the wire: signed match and fetch calls to connectors.

One ``ConnectorClient`` per broker process holds pooled keep-alive connections to every
connector (``aiohttp``, whose C parser costs a fraction of ``httpx``'s CPU per call: the
broker makes a dozen calls per family query), the broker's signer, the verifier of
connector answers, and a circuit breaker per agency. Tests hand it an ``httpx`` transport
instead, to reach connectors running in-process.
Every call returns a ``CallOutcome`` whatever happens: an answer, a refusal, a timeout or
an error, each with the time it took. Transport and envelope failures are translated here
and nowhere else.

Retries happen only where they are safe: when the connection was never established, the
connector cannot have seen (or audited) the request, so it is sent again once with a
fresh envelope. A timeout or an error after sending is never retried.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

import aiohttp
import httpx
import structlog
from pydantic import BaseModel

from broker.federation.breaker import CircuitBreaker
from connectors.protocol import KeyRing, Signer, Verifier
from connectors.protocol.errors import EnvelopeError, ProtocolError
from connectors.protocol.keys import public_key_from_b64
from connectors.protocol.messages import FetchRequest, FetchResponse, MatchRequest, MatchResponse

__all__ = ["MAX_ANSWER_BYTES", "CallOutcome", "CallStatus", "ConnectorClient", "ConnectorEndpoint"]

R = TypeVar("R", bound=BaseModel)
_log = structlog.get_logger("junction.federation")


class CallStatus(StrEnum):
    OK = "ok"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class ConnectorEndpoint:
    """Where one agency's connector listens."""

    agency_id: str
    base_url: str


@dataclass(frozen=True, slots=True)
class CallOutcome(Generic[R]):
    """What came of one call. ``message`` is set only when ``status`` is OK;
    ``rejected`` names why an answer that came was not used (an envelope error code)."""

    agency_id: str
    status: CallStatus
    elapsed: float
    message: R | None = None
    detail: str = ""
    request_digest: str | None = None
    response_digest: str | None = None
    rejected: str | None = None


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    reason: str
    body: bytes


class _Unreachable(Exception):
    """The connection was never established: the connector cannot have seen the call."""


class _Broken(Exception):
    """The transport failed after the request may have been sent."""


class _TooLarge(Exception):
    """The answer is longer than any connector's answer: it was cut off, not read whole."""


# A connector's answer is a few kilobytes (a match's candidates, a household's facts); a
# far longer one (a broken or hostile connector, or something else at its address) is cut
# off as it arrives instead of being held in the broker's memory whole.
MAX_ANSWER_BYTES = 8 * 1024 * 1024


def _kept(body: bytearray, chunk: bytes, most: int, *, declared: int | None = None) -> None:
    """Add ``chunk`` to ``body``; raise ``_TooLarge`` once it is over ``most`` bytes, or
    at once if the answer ``declared`` (its Content-Length) it would be."""
    body += chunk
    if len(body) > most or (declared or 0) > most:
        raise _TooLarge


_HEADERS = {"content-type": "application/json"}
# Below the keep-alive of the connectors' server (uvicorn: 5 s), so that the broker drops
# an idle connection before the connector closes it under a request just sent.
_KEEPALIVE_SECONDS = 4.0


class _PooledSender:
    """POSTs over aiohttp keep-alive pools, one per connector host; created lazily
    because an aiohttp session belongs to the event loop that first uses it."""

    def __init__(self, per_host: int, max_bytes: int) -> None:
        self._per_host = per_host
        self._max_bytes = max_bytes
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes) -> _Reply:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=self._per_host, keepalive_timeout=_KEEPALIVE_SECONDS
            )
            # The caller bounds the whole exchange; aiohttp adds no timeout of its own.
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=None)
            )
        try:
            # A redirect is answered as the error it is: the connector's registered address
            # is the only one the broker sends to (aiohttp would follow it, body and all).
            async with self._session.post(
                url, data=body, headers=_HEADERS, allow_redirects=False
            ) as response:
                declared = response.content_length
                if declared is not None and declared <= self._max_bytes:
                    # The usual answer: aiohttp reads exactly the length declared.
                    return _Reply(response.status, response.reason or "", await response.read())
                answer = bytearray()
                try:
                    _kept(answer, b"", self._max_bytes, declared=declared)
                    async for chunk in response.content.iter_any():
                        _kept(answer, chunk, self._max_bytes)
                except _TooLarge:
                    response.close()  # the rest is never read: this connection cannot be reused
                    raise
                return _Reply(response.status, response.reason or "", bytes(answer))
        except aiohttp.ClientConnectorError as exc:
            raise _Unreachable(str(exc)) from None
        except aiohttp.InvalidURL as exc:
            raise _Broken(f"the connector's address {exc} is not a valid URL") from None
        except aiohttp.ClientError as exc:
            raise _Broken(str(exc) or type(exc).__name__) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _TransportSender:
    """POSTs through an ``httpx`` transport (the seam tests use)."""

    def __init__(self, transport: httpx.AsyncBaseTransport, max_bytes: int) -> None:
        self._client = httpx.AsyncClient(transport=transport, headers=_HEADERS)
        self._max_bytes = max_bytes

    async def post(self, url: str, body: bytes) -> _Reply:
        answer = bytearray()
        try:
            async with self._client.stream("POST", url, content=body, timeout=None) as response:
                async for chunk in response.aiter_bytes():
                    _kept(answer, chunk, self._max_bytes)
        except httpx.ConnectError as exc:
            raise _Unreachable(str(exc)) from None
        except httpx.TimeoutException:
            raise TimeoutError from None
        except httpx.HTTPError as exc:
            raise _Broken(str(exc)) from None
        return _Reply(response.status_code, response.reason_phrase, bytes(answer))

    async def aclose(self) -> None:
        await self._client.aclose()


class ConnectorClient:
    """Sends signed requests to connectors and verifies their signed answers.

    ``max_connections`` bounds the connections kept open to each connector; an answer
    longer than ``max_answer_bytes`` is cut off and rejected; a ``transport`` replaces the
    network (tests reach in-process connectors through it).
    """

    def __init__(
        self,
        signer: Signer,
        keyring: KeyRing,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 64,
        breaker_threshold: int = 5,
        breaker_reset_after: float = 10.0,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
    ) -> None:
        self._signer = signer
        self._verifier = Verifier(keyring, signer.sender)
        self._max_answer_bytes = max_answer_bytes
        self._sender: _PooledSender | _TransportSender = (
            _PooledSender(max_connections, max_answer_bytes)
            if transport is None
            else _TransportSender(transport, max_answer_bytes)
        )
        self._breakers: dict[str, CircuitBreaker] = {}
        self._trusted: dict[str, tuple[str, str]] = {}
        self._breaker_threshold = breaker_threshold
        self._breaker_reset_after = breaker_reset_after

    @property
    def keyring(self) -> KeyRing:
        return self._verifier.keyring

    def trust(self, agency_id: str, public_key_b64: str) -> None:
        """Accept answers from ``agency_id`` signed with this key (and no other of its)."""
        kid = self._trusted.get(agency_id)
        if kid is not None and kid[0] == public_key_b64:
            return
        if kid is not None:
            self.keyring.remove(kid[1])
        new_kid = self.keyring.add(agency_id, public_key_from_b64(public_key_b64))
        self._trusted[agency_id] = (public_key_b64, new_kid)

    def breaker(self, agency_id: str) -> CircuitBreaker:
        breaker = self._breakers.get(agency_id)
        if breaker is None:
            breaker = CircuitBreaker(self._breaker_threshold, self._breaker_reset_after)
            self._breakers[agency_id] = breaker
        return breaker

    async def match(
        self, endpoint: ConnectorEndpoint, request: MatchRequest, budget: float
    ) -> CallOutcome[MatchResponse]:
        """Ask for candidate records; never raises."""
        return await self._call(endpoint, "/v1/match", request, MatchResponse, budget)

    async def fetch(
        self, endpoint: ConnectorEndpoint, request: FetchRequest, budget: float
    ) -> CallOutcome[FetchResponse]:
        """Ask for the named fields of the referenced persons; never raises."""
        return await self._call(endpoint, "/v1/fetch", request, FetchResponse, budget)

    async def aclose(self) -> None:
        await self._sender.aclose()

    async def _call(
        self,
        endpoint: ConnectorEndpoint,
        path: str,
        request: BaseModel,
        expect: type[R],
        budget: float,
    ) -> CallOutcome[R]:
        """``budget`` is the seconds this call may take, retries included."""
        call = _Call[R](endpoint.agency_id, self.breaker(endpoint.agency_id))
        if budget <= 0:
            # The broker ran out of time, not the agency: nothing is sent, and the
            # agency's breaker does not hear of it.
            return call.outcome(CallStatus.TIMEOUT, detail=_NO_TIME_LEFT)
        if not call.breaker.allow():
            # Not a new failure: the breaker is already open and keeps its own clock.
            return call.outcome(CallStatus.ERROR, detail="circuit open")
        url = endpoint.base_url.rstrip("/") + path
        for attempt in (1, 2):
            envelope = self._signer.seal(request, call.agency)
            call.request_digest = envelope.digest()
            remaining = budget - call.elapsed()
            if remaining <= 0:
                break
            try:
                # One bound on the whole exchange: a connector that drips its answer
                # must still end within the budget.
                async with asyncio.timeout(remaining):
                    reply = await self._sender.post(url, envelope.to_bytes())
            except _Unreachable as exc:
                if attempt == 1:
                    continue  # never reached the connector: safe to send again
                return call.failed(CallStatus.ERROR, f"cannot connect: {exc}")
            except TimeoutError:
                break
            except _Broken as exc:
                return call.failed(CallStatus.ERROR, f"transport error: {exc}")
            except _TooLarge:
                most = self._max_answer_bytes / (1024 * 1024)
                return call.rejected(
                    "answer-too-large",
                    f"it is over {most:g} MB, far more than any connector answers; it was cut"
                    " off unread. Check the connector's address and its log",
                )
            return self._answer(call, reply, request, expect)
        return call.failed(CallStatus.TIMEOUT, f"no answer within {budget:.2f} s")

    def _answer(
        self, call: _Call[R], reply: _Reply, request: BaseModel, expect: type[R]
    ) -> CallOutcome[R]:
        if reply.status != 200:
            detail = f"HTTP {reply.status}: {_problem_detail(reply)}"
            # A 4xx means the connector judged our request: it is up and answering.
            return call.failed(CallStatus.ERROR, detail, counts=reply.status >= 500)
        try:
            opened = self._verifier.open(reply.body, expect)
        except (EnvelopeError, ProtocolError) as exc:
            # A forged or garbled answer is the connector's fault, and is never used.
            _log.warning("connector_answer_rejected", agency=call.agency, reason=exc.code)
            call.response_digest = "sha256:" + hashlib.sha256(reply.body).hexdigest()
            return call.rejected(exc.code, _one_line(exc.detail))
        if opened.sender != call.agency:
            call.response_digest = opened.envelope_digest
            return call.rejected(
                "envelope-unknown-key", f"signed by {opened.sender!r}, not {call.agency!r}"
            )
        mismatch = _mismatch(call.agency, request, opened.message)
        if mismatch:
            # A genuine answer of the agency, but to another request: a recorded answer
            # sent again, or one crossed in transit. Using it would show another query's
            # people as this one's.
            _log.warning("connector_answer_rejected", agency=call.agency, reason=_NOT_THIS)
            call.response_digest = opened.envelope_digest
            return call.rejected(_NOT_THIS, mismatch)
        call.breaker.record_success()
        call.response_digest = opened.envelope_digest
        return call.outcome(CallStatus.OK, message=opened.message)


class _Call(Generic[R]):
    """One call in progress: its clock, its breaker and the digests seen so far."""

    def __init__(self, agency: str, breaker: CircuitBreaker) -> None:
        self.agency = agency
        self.breaker = breaker
        self.started = time.perf_counter()
        self.request_digest: str | None = None
        self.response_digest: str | None = None
        self.rejection: str | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def outcome(
        self, status: CallStatus, *, message: R | None = None, detail: str = ""
    ) -> CallOutcome[R]:
        return CallOutcome(
            self.agency,
            status,
            self.elapsed(),
            message=message,
            detail=detail,
            request_digest=self.request_digest,
            response_digest=self.response_digest,
            rejected=self.rejection,
        )

    def failed(self, status: CallStatus, detail: str, *, counts: bool = True) -> CallOutcome[R]:
        """The call failed; ``counts`` says whether the connector's breaker should know."""
        if counts:
            self.breaker.record_failure()
        else:
            self.breaker.record_success()
        return self.outcome(status, detail=detail)

    def rejected(self, code: str, why: str) -> CallOutcome[R]:
        """An answer came but is not used: the connector's fault, named by ``code``."""
        self.rejection = code
        return self.failed(CallStatus.ERROR, f"answer rejected ({code}): {why}")


_NOT_THIS = "answer-not-for-this-request"
_NO_TIME_LEFT = "not asked: the query's deadline had passed before this agency's turn"


def _mismatch(agency: str, request: BaseModel, answer: BaseModel) -> str:
    """What says ``answer`` is not the answer to ``request`` from ``agency``; "" if none."""
    answered = getattr(answer, "agency_id", agency)
    if answered != agency:
        return f"it is the answer of agency {answered!r}, not {agency!r}"
    for name in ("query_id", "exchange_id"):
        asked, got = getattr(request, name, None), getattr(answer, name, None)
        if asked != got:
            return f"it answers {name.removesuffix('_id')} {got!r}, not {asked!r}"
    return ""


_DETAIL_MOST = 300
"""Characters of a connector's own words kept for the caseworker's answer."""


def _one_line(text: str) -> str:
    """``text`` as one short printable line: it is shown on the caseworker's answer,
    where a connector's stack trace or terminal colours have no place."""
    printable = "".join(c if c.isprintable() else " " for c in text)
    line = " ".join(printable.split())
    return line if len(line) <= _DETAIL_MOST else line[: _DETAIL_MOST - 1] + "…"


def _problem_detail(reply: _Reply) -> str:
    try:
        body = json.loads(reply.body)
    except ValueError:
        return _one_line(reply.reason)
    if isinstance(body, dict):
        return _one_line(str(body.get("detail") or body.get("title") or reply.reason))
    return _one_line(reply.reason)
