"""The family query's records: receipts, idempotency keys, and the link register.

Transactions live here; SQL lives in ``repository``. The answer kept for an idempotency
key holds agency facts, so it is sealed with AES-256-GCM under a key only this broker
holds, and it is deleted once the key expires (10 minutes by default).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.db import Database
from broker.errors import Conflict
from broker.queries import repository
from broker.queries.models import (
    FamilyQueryRow,
    IdempotencyRow,
    LinkDecisionRow,
    UncertainLinkRow,
)
from broker.queries.render import link_id
from broker.queries.schemas import FamilyView

__all__ = ["IdempotencyClaim", "QueryStore"]

_STILL_RUNNING = "a request with this Idempotency-Key is still running; retry shortly"
# Longer than any query runs (its deadline is at most 60 s, and its audit entries follow):
# a claim still running after this was left by a broker stopped in the middle of it.
_LONGEST_RUN = dt.timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """The outcome of presenting an idempotency key: run the query, or replay ``answer``."""

    key: str
    answer: FamilyView | None


class QueryStore:
    """Receipts, idempotency keys and link decisions in the broker's database."""

    def __init__(
        self,
        database: Database,
        sealing_key: bytes,
        *,
        key_lifetime: dt.timedelta = dt.timedelta(minutes=10),
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._db = database
        self._aead = AESGCM(sealing_key)
        self._lifetime = key_lifetime
        self._clock = clock

    # -- idempotency ------------------------------------------------------------------------

    def claim(self, actor: str, key: str, request_hash: str) -> IdempotencyClaim:
        """Claim ``key`` for this request, or get the answer it already produced.

        A claim whose query never finished (its broker stopped in the middle) is taken
        over once no query could still be running under it. Raises ``Conflict`` if the
        key was used for a different request, or if the first request with it is still
        running.
        """
        scoped = hashlib.sha256(f"{actor}\x00{key}".encode()).hexdigest()
        now = self._clock()
        try:
            with self._db.session(write=True) as session:
                repository.delete_expired_keys(session, now)
                existing = repository.idempotency_row(session, scoped)
                if existing is None:
                    repository.claim_idempotency_key(
                        session,
                        IdempotencyRow(
                            key=scoped,
                            request_hash=request_hash,
                            state="running",
                            created_at=now,
                            expires_at=now + self._lifetime,
                        ),
                    )
                    return IdempotencyClaim(scoped, None)
                held, sealed = existing.request_hash, existing.sealed_answer
                if (
                    held == request_hash
                    and existing.state == "running"
                    and existing.created_at + _LONGEST_RUN <= now
                ):
                    existing.created_at = now
                    existing.expires_at = now + self._lifetime
                    return IdempotencyClaim(scoped, None)
        except Conflict:
            # The same key claimed at the same moment, by a sending that is running.
            raise Conflict(_STILL_RUNNING) from None
        if held != request_hash:
            raise Conflict(
                "this Idempotency-Key was used for a different request; "
                "use a new key for a new query"
            )
        if sealed is None:
            raise Conflict(_STILL_RUNNING)
        return IdempotencyClaim(scoped, self._unseal(scoped, sealed))

    def replay(self, actor: str, key: str, request_hash: str) -> FamilyView | None:
        """The answer kept for ``key`` if it is done, unexpired and for this request.

        Read-only (unlike ``claim``): ``None`` when there is nothing to show again.
        """
        scoped = hashlib.sha256(f"{actor}\x00{key}".encode()).hexdigest()
        with self._db.session() as session:
            row = repository.idempotency_row(session, scoped)
            if (
                row is None
                or row.state != "done"
                or row.sealed_answer is None
                or row.request_hash != request_hash
                or row.expires_at <= self._clock()
            ):
                return None
            sealed = row.sealed_answer
        return self._unseal(scoped, sealed)

    def kept_answer(self, query_id: str) -> FamilyView | None:
        """The answer of ``query_id`` if it was sent with a key that has not expired."""
        with self._db.session() as session:
            row = repository.answer_of(session, query_id)
            if row is None or row.sealed_answer is None or row.expires_at <= self._clock():
                return None
            key, sealed = row.key, row.sealed_answer
        return self._unseal(key, sealed)

    def complete(self, claim: IdempotencyClaim, view: FamilyView) -> None:
        with self._db.session(write=True) as session:
            row = repository.idempotency_row(session, claim.key)
            if row is not None:
                row.state = "done"
                row.query_id = view.query_id
                row.sealed_answer = self._seal(claim.key, view)

    def release(self, claim: IdempotencyClaim) -> None:
        """Forget a claim whose query failed, so the client may retry with the same key."""
        with self._db.session(write=True) as session:
            row = repository.idempotency_row(session, claim.key)
            if row is not None and row.state == "running":
                session.delete(row)

    def _seal(self, key: str, view: FamilyView) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, view.model_dump_json().encode(), key.encode())

    def _unseal(self, key: str, sealed: bytes) -> FamilyView | None:
        try:
            plain = self._aead.decrypt(sealed[:12], sealed[12:], key.encode())
        except InvalidTag:
            return None
        return FamilyView.model_validate_json(plain)

    # -- receipts ---------------------------------------------------------------------------

    def record_query(self, actor: str, agency: str, view: FamilyView) -> None:
        receipt = view.receipt
        with self._db.write() as connection:
            repository.add_query(
                connection,
                {
                    "query_id": view.query_id,
                    "actor": actor,
                    "actor_agency": agency,
                    "purpose": view.purpose,
                    "status": view.status,
                    "created_at": view.created_at,
                    "entries": list(receipt.entries) if receipt else [],
                    "release_entry": receipt.release_entry if receipt else None,
                },
            )

    def query(self, query_id: str) -> FamilyQueryRow | None:
        with self._db.session() as session:
            return repository.query(session, query_id)

    def queries(
        self, actor: str | None, *, before: dt.datetime | None = None, limit: int = 50
    ) -> Sequence[FamilyQueryRow]:
        with self._db.session() as session:
            return repository.queries_of(session, actor, before=before, limit=limit)

    # -- the link register (``ports.LinkRegister``) --------------------------------------------

    def decisions_for(
        self, keys: Collection[str]
    ) -> tuple[set[frozenset[str]], set[frozenset[str]]]:
        confirmed: set[frozenset[str]] = set()
        rejected: set[frozenset[str]] = set()
        with self._db.read() as connection:
            for row in repository.link_decisions(connection, keys):
                pair = frozenset((row.left_key, row.right_key))
                (confirmed if row.decision == "confirm" else rejected).add(pair)
        return confirmed, rejected

    def remember_uncertain(
        self, query_id: str, actor: str, pairs: Sequence[tuple[str, str, float]]
    ) -> None:
        with self._db.session(write=True) as session:
            for left, right, probability in pairs:
                repository.add(
                    session,
                    UncertainLinkRow(
                        query_id=query_id,
                        link_id=link_id(left, right),
                        actor=actor,
                        left_key=left,
                        right_key=right,
                        probability=probability,
                    ),
                )

    def uncertain_pair(self, query_id: str, actor: str, link: str) -> tuple[str, str] | None:
        with self._db.session() as session:
            row = repository.uncertain_link(session, query_id, link)
            if row is None or row.actor != actor:
                return None
            return row.left_key, row.right_key

    def decide(self, left: str, right: str, decision: str, actor: str) -> None:
        """Record the caseworker's decision on a link; the latest decision stands."""
        try:
            self._decide(left, right, decision, actor)
        except Conflict:
            # Another decision on the same link was stored at the same moment: this one,
            # already in the audit log, is the later, and replaces it.
            self._decide(left, right, decision, actor)

    def _decide(self, left: str, right: str, decision: str, actor: str) -> None:
        pair_id = link_id(left, right)
        with self._db.session(write=True) as session:
            row = repository.link_decision(session, pair_id)
            if row is None:
                repository.add(
                    session,
                    LinkDecisionRow(
                        link_id=pair_id,
                        left_key=left,
                        right_key=right,
                        decision=decision,
                        decided_by=actor,
                        decided_at=self._clock(),
                    ),
                )
            else:
                row.decision = decision
                row.decided_by = actor
                row.decided_at = self._clock()
