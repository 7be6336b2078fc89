"""The connector's logic: verify, ask local policy, read the source, record, sign.

Routes stay thin; everything an exchange does happens here, in this order:

1. open the signed envelope (a rejection is recorded locally, then raised);
2. for a fetch, check the broker checkpoint it carries against the one stored;
3. ask the local policy; a refusal is a signed answer, not an error;
4. read the agency's source;
5. release exactly what was asked, allowed and held, nothing more;
6. sign the answer and record it in the local audit log; it leaves only once recorded.

Steps 2 to 6 block (SQL, Rego, fsync), so they run together in one worker thread under
the per-request deadline, and the event loop keeps serving other requests meanwhile.
A request that misses the deadline is answered 504; its thread finishes on its own.
"""

from __future__ import annotations

import base64
import binascii
import csv
import dataclasses
import datetime as dt
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import anyio
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from connectors.errors import (
    CheckpointInvalid,
    ConnectorError,
    SourceTimeout,
    SourceUnavailable,
)
from connectors.protocol.envelope import Envelope, Opened, Signer, Verifier
from connectors.protocol.errors import EnvelopeError
from connectors.protocol.keys import public_key_to_b64
from connectors.protocol.messages import (
    FetchPerson,
    FetchRequest,
    FetchResponse,
    FetchStatus,
    Manifest,
    MatchCandidate,
    MatchRequest,
    MatchResponse,
    MatchStatus,
)
from connectors.service._release import person_facts, readable_fields, summary
from connectors.service.checkpoints import CheckpointGuard
from connectors.service.metrics import ConnectorMetrics
from connectors.service.ports import (
    AgencySource,
    AuditEvent,
    AuditKind,
    FetchResult,
    LocalAudit,
    LocalPolicy,
    PolicyInput,
    PolicyPerson,
    PolicyVerdict,
)

__all__ = ["AgencyIdentity", "ConnectorService"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
_log = structlog.get_logger("junction.connector")


@dataclass(frozen=True, slots=True)
class AgencyIdentity:
    """Who this connector speaks for."""

    agency_id: str
    agency_name: str
    agency_type: str
    linkage_key_id: str
    consent_key_id: str | None = None


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


class ConnectorService:
    """Answers the broker's signed match and fetch requests for one agency."""

    def __init__(
        self,
        *,
        agency: AgencyIdentity,
        signer: Signer,
        verifier: Verifier,
        source: AgencySource,
        policy: LocalPolicy,
        audit: LocalAudit,
        checkpoints: CheckpointGuard | None = None,
        metrics: ConnectorMetrics | None = None,
        clock: Callable[[], float] = time.time,
        source_timeout_seconds: float = 5.0,
    ) -> None:
        self.agency = agency
        self._signer = signer
        self._verifier = verifier
        self._source = source
        self._policy = policy
        self._audit = audit
        self._checkpoints = checkpoints
        self.metrics = metrics if metrics is not None else ConnectorMetrics(agency.agency_id)
        self._clock = clock
        self._timeout = source_timeout_seconds
        self._offered = {offer.name for offer in source.offered_fields()}

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The agency's public key: its answers and its local log verify under it."""
        return self._signer.public_key

    # -- manifest ---------------------------------------------------------------------

    def manifest(self, audience: str) -> Envelope:
        """The agency's signed manifest: who it is, its key, and the fields it offers."""
        message = Manifest(
            agency_id=self.agency.agency_id,
            agency_name=self.agency.agency_name,
            agency_type=self.agency.agency_type,
            public_key=public_key_to_b64(self._signer.public_key),
            key_id=self._signer.key_id,
            linkage_key_id=self.agency.linkage_key_id,
            consent_key_id=self.agency.consent_key_id,
            fields=list(self._source.offered_fields()),
        )
        return self._signer.seal(message, audience)

    # -- match ------------------------------------------------------------------------

    async def match(self, raw: bytes) -> Envelope:
        """Answer a signed ``MatchRequest``. Raises ``EnvelopeError`` or ``ConnectorError``."""
        opened = await self._open(raw, MatchRequest, "match")
        return await self._in_worker(partial(self._match, opened))

    def _match(self, opened: Opened[MatchRequest]) -> Envelope:
        request = opened.message
        base = {
            "counterparty": opened.sender,
            "query_id": request.query_id,
            "requester_agency": request.requester_agency,
            "purpose": request.purpose,
            "request_digest": opened.envelope_digest,
        }
        policy_input = PolicyInput(
            operation="match",
            agency_id=self.agency.agency_id,
            requester_agency=request.requester_agency,
            requester_role=None,
            purpose=request.purpose,
            legal_basis=None,
            break_glass=False,
            persons=(),
        )
        verdict = self._policy.decide(policy_input)
        if verdict.refusal is not None:
            response = MatchResponse(
                query_id=request.query_id,
                agency_id=self.agency.agency_id,
                status=MatchStatus.REFUSED,
                refusal=verdict.refusal,
            )
            return self._answer(
                response,
                opened.sender,
                AuditKind.REFUSAL,
                base,
                decision="refused",
                reasons=(f"{verdict.refusal.scope}:{verdict.refusal.code}",),
                policy_digest=verdict.bundle_digest,
            )
        found = self._read(
            "match",
            partial(
                self._source.match,
                request.subject,
                include_household=request.include_household,
                max_candidates=request.max_candidates,
            ),
        )
        candidates, dropped, verdict = self._screen_candidates(policy_input, found)
        response = MatchResponse(
            query_id=request.query_id,
            agency_id=self.agency.agency_id,
            status=MatchStatus.MATCHED if candidates else MatchStatus.NO_RECORD,
            candidates=candidates,
        )
        refs = [c.ref for c in candidates] + [m.ref for c in candidates for m in c.household]
        return self._answer(
            response,
            opened.sender,
            AuditKind.MATCH,
            base,
            decision=response.status.value,
            reasons=tuple(dropped),
            refs=tuple(refs),
            policy_digest=verdict.bundle_digest,
        )

    def _screen_candidates(
        self, policy_input: PolicyInput, found: Sequence[MatchCandidate]
    ) -> tuple[list[MatchCandidate], list[str], PolicyVerdict]:
        """Drop candidates and household members the local policy protects.

        A protected person is left out rather than refused by name: saying "refused" for
        a sealed record would itself disclose that the record exists.
        """
        refs = _unique([c.ref for c in found] + [m.ref for c in found for m in c.household])
        flags = self._read("flags", partial(self._source.flags, refs))
        persons = tuple(PolicyPerson(ref, flags.get(ref, frozenset())) for ref in refs)
        verdict = self._policy.decide(dataclasses.replace(policy_input, persons=persons))
        dropped = [f"person:{verdict.persons[ref].code}" for ref in refs if ref in verdict.persons]
        kept: list[MatchCandidate] = []
        for candidate in found:
            if candidate.ref in verdict.persons:
                continue
            household = [m for m in candidate.household if m.ref not in verdict.persons]
            kept.append(candidate.model_copy(update={"household": household}))
        return kept, dropped, verdict

    # -- fetch ------------------------------------------------------------------------

    async def fetch(self, raw: bytes) -> Envelope:
        """Answer a signed ``FetchRequest``: exactly the fields named, for the refs named.

        Raises ``EnvelopeError``, ``CheckpointInvalid``, ``CheckpointRejected`` or a
        ``ConnectorError`` from the source, policy or audit log.
        """
        opened = await self._open(raw, FetchRequest, "fetch")
        return await self._in_worker(partial(self._fetch, opened))

    def _fetch(self, opened: Opened[FetchRequest]) -> Envelope:
        request = opened.message
        base = {
            "counterparty": opened.sender,
            "query_id": request.query_id,
            "exchange_id": request.exchange_id,
            "requester_agency": request.requester_agency,
            "purpose": request.purpose,
            "legal_basis": request.legal_basis,
            "request_digest": opened.envelope_digest,
            "decision_digest": request.decision_digest,
        }
        if request.broker_checkpoint is not None:
            self._observe_checkpoint(request, base)
        persons = [FetchPerson(ref=p.ref, fields=_unique(p.fields)) for p in request.persons]
        refs = _unique([p.ref for p in persons])
        flags = self._read("flags", partial(self._source.flags, refs))
        verdict = self._policy.decide(
            PolicyInput(
                operation="fetch",
                agency_id=self.agency.agency_id,
                requester_agency=request.requester_agency,
                requester_role=request.requester_role,
                purpose=request.purpose,
                legal_basis=request.legal_basis,
                break_glass=request.break_glass,
                persons=tuple(
                    PolicyPerson(p.ref, flags.get(p.ref, frozenset()), tuple(p.fields))
                    for p in persons
                ),
            )
        )
        if verdict.refusal is not None:
            response = FetchResponse(
                query_id=request.query_id,
                exchange_id=request.exchange_id,
                agency_id=self.agency.agency_id,
                decision_digest=request.decision_digest,
                status=FetchStatus.REFUSED,
                refusal=verdict.refusal,
            )
            return self._answer(
                response,
                opened.sender,
                AuditKind.REFUSAL,
                base,
                decision="refused",
                reasons=(f"{verdict.refusal.scope}:{verdict.refusal.code}",),
                refs=tuple(refs),
                policy_digest=verdict.bundle_digest,
            )
        readable = readable_fields(persons, flags, verdict, self._offered)
        wanted = _unique([f for fields in readable.values() for f in fields])
        records: FetchResult = {}
        if readable and wanted:
            records = dict(self._read("fetch", partial(self._source.fetch, list(readable), wanted)))
        answered = [
            person_facts(p, flags, verdict, records.get(p.ref), self._offered) for p in persons
        ]
        released, reasons = summary(answered)
        response = FetchResponse(
            query_id=request.query_id,
            exchange_id=request.exchange_id,
            agency_id=self.agency.agency_id,
            decision_digest=request.decision_digest,
            status=FetchStatus.OK,
            persons=answered,
        )
        return self._answer(
            response,
            opened.sender,
            AuditKind.FETCH,
            base,
            decision="released" if released else "nothing_released",
            reasons=reasons,
            refs=tuple(refs),
            fields_released=released,
            policy_digest=verdict.bundle_digest,
        )

    def _observe_checkpoint(self, request: FetchRequest, base: dict[str, Any]) -> None:
        if self._checkpoints is None or request.broker_checkpoint is None:
            return
        proof: list[bytes] | None = None
        try:
            if request.broker_consistency_proof is not None:
                proof = [
                    base64.b64decode(h, validate=True) for h in request.broker_consistency_proof
                ]
        except (binascii.Error, ValueError):
            self._record_rejection(base, "broker-checkpoint-invalid")
            raise CheckpointInvalid(
                "the consistency proof is not a list of base64 hashes"
            ) from None
        try:
            self._checkpoints.observe(
                request.broker_checkpoint, proof, proof_from=request.broker_consistency_from
            )
        except ConnectorError as exc:
            self._record_rejection(base, exc.code)
            # A broker log that forked or went backwards refuses every fetch until the
            # operators act, so the agency's own log says so, not only "409".
            _log.error(
                "broker_checkpoint_rejected",
                code=exc.code,
                detail=exc.detail,
                query_id=request.query_id,
            )
            raise

    # -- the steps every exchange shares ----------------------------------------------

    async def _open(self, raw: bytes, expect: type[M], endpoint: str) -> Opened[M]:
        try:
            return self._verifier.open(raw, expect)
        except EnvelopeError as exc:
            sender = _claimed_sender(raw)
            await anyio.to_thread.run_sync(
                partial(
                    self._record_rejection,
                    {
                        "counterparty": sender,
                        "request_digest": "sha256:" + hashlib.sha256(raw).hexdigest(),
                    },
                    exc.code,
                    endpoint=endpoint,
                )
            )
            raise

    def _record_rejection(
        self, base: dict[str, Any], code: str, *, endpoint: str | None = None
    ) -> None:
        event = AuditEvent(
            kind=AuditKind.REJECTION,
            at=self._now(),
            decision="rejected",
            reasons=(code,) if endpoint is None else (code, f"endpoint:{endpoint}"),
            **{k: v for k, v in base.items() if k != "counterparty"},
            counterparty=str(base.get("counterparty") or "unknown"),
        )
        self._audit.record(event)

    async def run_source_call(self, operation: str, call: Callable[[], T]) -> T:
        """Run one blocking source call in a worker thread, under the deadline."""
        return await self._in_worker(partial(self._read, operation, call))

    async def _in_worker(self, call: Callable[[], T]) -> T:
        """Run one exchange's blocking steps in one worker thread, under the deadline.

        The whole exchange (policy, source reads, audit append, signing) takes a single
        trip to the thread pool: under load every extra hop costs a scheduler wake-up.
        """
        try:
            with anyio.fail_after(self._timeout):
                return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        except TimeoutError:
            raise SourceTimeout(
                f"the agency's system did not answer within {self._timeout:g}s; try again later"
            ) from None

    def _read(self, operation: str, call: Callable[[], T]) -> T:
        """Call the source, timing it; the one place a driver's exception becomes ours.

        A database, file or CSV error the source lets escape becomes
        ``SourceUnavailable`` (the detail names the exception type only: driver messages
        can carry connection strings or values); our own errors pass through.
        """
        started = time.perf_counter()
        try:
            return call()
        except ConnectorError:
            raise
        except (SQLAlchemyError, OSError, csv.Error, UnicodeDecodeError) as exc:
            _log.error("source_failed", operation=operation, error_type=type(exc).__name__)
            raise SourceUnavailable(
                f"the agency's system failed ({type(exc).__name__}); try again later"
            ) from None
        finally:
            self.metrics.source_latency.labels(operation).observe(time.perf_counter() - started)

    def _answer(
        self,
        response: MatchResponse | FetchResponse,
        audience: str,
        kind: AuditKind,
        base: dict[str, Any],
        *,
        decision: str,
        reasons: tuple[str, ...] = (),
        refs: tuple[str, ...] = (),
        fields_released: tuple[str, ...] = (),
        policy_digest: str | None = None,
    ) -> Envelope:
        held = None if self._checkpoints is None else self._checkpoints.latest
        if held is not None:
            # So the broker can prove that its next checkpoint extends this one.
            response = response.model_copy(update={"broker_checkpoint_size": held.size})
        envelope = self._signer.seal(response, audience)
        event = AuditEvent(
            kind=kind,
            at=self._now(),
            decision=decision,
            reasons=reasons,
            refs=refs,
            fields_released=fields_released,
            response_digest=envelope.digest(),
            policy_digest=policy_digest,
            **base,
        )
        # The answer leaves only once the local log holds it.
        self._audit.record(event)
        return envelope

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), tz=dt.UTC)


def _claimed_sender(raw: bytes) -> str | None:
    """The sender an unverified envelope claims, for the record only."""
    try:
        header = Envelope.parse(raw).header
    except EnvelopeError:
        return None
    sender = header.get("sender")
    return sender[:64] if isinstance(sender, str) else None
