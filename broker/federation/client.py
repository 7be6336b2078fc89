"""The broker's side of the wire: signed match and fetch calls to connectors.

One ``ConnectorClient`` per broker process holds a pooled keep-alive ``httpx`` client, the
broker's signer, the verifier of connector answers, and a circuit breaker per agency.
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
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

import httpx
import structlog
from pydantic import BaseModel

from broker.federation.breaker import CircuitBreaker
from connectors.protocol import KeyRing, Signer, Verifier
from connectors.protocol.errors import EnvelopeError, ProtocolError
from connectors.protocol.keys import public_key_from_b64
from connectors.protocol.messages import FetchRequest, FetchResponse, MatchRequest, MatchResponse

__all__ = ["CallOutcome", "CallStatus", "ConnectorClient", "ConnectorEndpoint"]

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
    """What came of one call. ``message`` is set only when ``status`` is OK."""

    agency_id: str
    status: CallStatus
    elapsed: float
    message: R | None = None
    detail: str = ""
    request_digest: str | None = None
    response_digest: str | None = None


class ConnectorClient:
    """Sends signed requests to connectors and verifies their signed answers."""

    def __init__(
        self,
        signer: Signer,
        keyring: KeyRing,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 200,
        breaker_threshold: int = 5,
        breaker_reset_after: float = 10.0,
    ) -> None:
        self._signer = signer
        self._verifier = Verifier(keyring, signer.sender)
        self._http = httpx.AsyncClient(
            transport=transport,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"content-type": "application/json"},
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
        await self._http.aclose()

    async def _call(
        self,
        endpoint: ConnectorEndpoint,
        path: str,
        request: BaseModel,
        expect: type[R],
        budget: float,
    ) -> CallOutcome[R]:
        """``budget`` is the seconds this call may take, retries included."""
        agency = endpoint.agency_id
        started = time.perf_counter()
        breaker = self.breaker(agency)
        if not breaker.allow():
            return CallOutcome(agency, CallStatus.ERROR, 0.0, detail="circuit open")
        url = endpoint.base_url.rstrip("/") + path
        request_digest: str | None = None
        for attempt in (1, 2):
            envelope = self._signer.seal(request, agency)
            request_digest = envelope.header["body_digest"]
            remaining = budget - (time.perf_counter() - started)
            if remaining <= 0:
                break
            try:
                # httpx's timeouts bound each read, not the whole exchange: a connector
                # that drips its answer must still end within the budget.
                async with asyncio.timeout(remaining):
                    response = await self._http.post(
                        url, content=envelope.to_bytes(), timeout=remaining
                    )
                    await response.aread()
            except httpx.ConnectError as exc:
                if attempt == 1:
                    continue  # never reached the connector: safe to send again
                return self._failed(
                    breaker, agency, started, f"cannot connect: {exc}", request_digest
                )
            except (httpx.TimeoutException, TimeoutError):
                breaker.record_failure()
                return CallOutcome(
                    agency,
                    CallStatus.TIMEOUT,
                    time.perf_counter() - started,
                    detail=f"no answer within {budget:.2f} s",
                    request_digest=request_digest,
                )
            except httpx.HTTPError as exc:
                return self._failed(
                    breaker, agency, started, f"transport error: {exc}", request_digest
                )
            return self._answer(
                breaker, agency, started, response, expect=expect, request_digest=request_digest
            )
        breaker.record_failure()
        return CallOutcome(
            agency,
            CallStatus.TIMEOUT,
            time.perf_counter() - started,
            detail=f"no answer within {budget:.2f} s",
            request_digest=request_digest,
        )

    def _answer(
        self,
        breaker: CircuitBreaker,
        agency: str,
        started: float,
        response: httpx.Response,
        *,
        expect: type[R],
        request_digest: str | None,
    ) -> CallOutcome[R]:
        if response.status_code != 200:
            detail = _problem_detail(response)
            # A 4xx means the connector judged our request; it is up and answering.
            if response.status_code < 500:
                breaker.record_success()
            else:
                breaker.record_failure()
            return CallOutcome(
                agency,
                CallStatus.ERROR,
                time.perf_counter() - started,
                detail=f"HTTP {response.status_code}: {detail}",
                request_digest=request_digest,
            )
        try:
            opened = self._verifier.open(response.content, expect)
        except (EnvelopeError, ProtocolError) as exc:
            # A forged or garbled answer is the connector's fault, and is never used.
            breaker.record_failure()
            _log.warning("connector_answer_rejected", agency=agency, reason=exc.code)
            return CallOutcome(
                agency,
                CallStatus.ERROR,
                time.perf_counter() - started,
                detail=f"answer rejected ({exc.code}): {exc.detail}",
                request_digest=request_digest,
                response_digest="sha256:" + hashlib.sha256(response.content).hexdigest(),
            )
        if opened.sender != agency:
            breaker.record_failure()
            return CallOutcome(
                agency,
                CallStatus.ERROR,
                time.perf_counter() - started,
                detail=f"answer signed by {opened.sender!r}, not {agency!r}",
                request_digest=request_digest,
            )
        breaker.record_success()
        return CallOutcome(
            agency,
            CallStatus.OK,
            time.perf_counter() - started,
            message=opened.message,
            request_digest=request_digest,
            response_digest=opened.body_digest,
        )

    @staticmethod
    def _failed(
        breaker: CircuitBreaker, agency: str, started: float, detail: str, digest: str | None
    ) -> CallOutcome[R]:
        breaker.record_failure()
        return CallOutcome(
            agency,
            CallStatus.ERROR,
            time.perf_counter() - started,
            detail=detail,
            request_digest=digest,
        )


def _problem_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or response.reason_phrase)
    return response.reason_phrase
