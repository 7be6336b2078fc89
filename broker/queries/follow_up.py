"""After the answer: the caseworker's receipts with proofs, and confirming links."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

from audit.entry import Decision, Entry, Kind
from audit.errors import AuditError
from audit.log import AuditLog
from broker.errors import Forbidden, NotFound, StoreUnavailable
from broker.identity.principal import Principal, Role
from broker.queries.models import FamilyQueryRow
from broker.queries.schemas import FamilyView, LinkDecisionIn
from broker.queries.store import QueryStore
from broker.subjects import SubjectKeys

__all__ = ["EntryProof", "FollowUpService", "LinkDecided", "ReceiptProofs"]


@dataclass(frozen=True, slots=True)
class EntryProof:
    index: int
    leaf_hash: str
    inclusion_proof: list[str]


@dataclass(frozen=True, slots=True)
class ReceiptProofs:
    query_id: str
    tree_size: int
    checkpoint: str
    entries: list[EntryProof]


@dataclass(frozen=True, slots=True)
class LinkDecided:
    link_id: str
    decision: str
    audit_entry: int


class FollowUpService:
    def __init__(self, store: QueryStore, audit: AuditLog, subjects: SubjectKeys) -> None:
        self._store = store
        self._audit = audit
        self._subjects = subjects

    def _own_query(
        self, principal: Principal, query_id: str, what: str = "see the receipts of"
    ) -> FamilyQueryRow:
        row = self._store.query(query_id)
        if row is None:
            raise NotFound(f"there is no family query {query_id!r}")
        if principal.role is Role.CASEWORKER and row.actor != principal.subject:
            raise Forbidden(f"a caseworker may {what} their own queries only")
        return row

    def answer(self, principal: Principal, query_id: str) -> FamilyView:
        """The answer of one of the caseworker's own queries, while it is kept.

        Raises ``NotFound`` (also once the answer is no longer kept) or ``Forbidden``.
        """
        self._own_query(principal, query_id, "read the answers of")
        view = self._store.kept_answer(query_id)
        if view is None:
            raise NotFound(
                f"the answer of query {query_id!r} is not kept: an answer is kept for"
                " 10 minutes, for a query sent with an Idempotency-Key; run the query again"
            )
        return view

    async def receipt(self, principal: Principal, query_id: str) -> ReceiptProofs:
        """Inclusion proofs of every entry of a query against one signed checkpoint.

        Waits (up to 5 s) for the checkpoint that covers the query's last entry.
        Raises ``NotFound``, ``Forbidden``, or ``StoreUnavailable``.
        """
        row = self._own_query(principal, query_id)
        indexes = sorted(row.entries)
        if not indexes:
            raise NotFound(f"query {query_id!r} has no audit entries")
        try:
            last = await self._audit.receipt_async(indexes[-1], timeout=5.0)
            proofs = []
            for index in indexes:
                if index == last.index:
                    leaf, path = last.leaf_hash, list(last.inclusion_proof)
                else:
                    stored = await asyncio.to_thread(self._audit.get, index)
                    leaf = stored.leaf_hash
                    path = await asyncio.to_thread(
                        self._audit.inclusion_proof, index, last.tree_size
                    )
                proofs.append(EntryProof(index, leaf.hex(), [h.hex() for h in path]))
        except AuditError as exc:
            raise StoreUnavailable(f"the audit log cannot give the proofs now: {exc}") from None
        return ReceiptProofs(query_id, last.tree_size, last.checkpoint, proofs)

    async def decide_link(
        self, principal: Principal, query_id: str, decision: LinkDecisionIn
    ) -> LinkDecided:
        """Confirm or reject a link the query left uncertain; audited.

        Raises ``NotFound`` when the link was not one of this caseworker's open links.
        """
        self._own_query(principal, query_id, "confirm or reject the links of")
        pair = self._store.uncertain_pair(query_id, principal.subject, decision.link_id)
        if pair is None:
            raise NotFound(f"link {decision.link_id!r} is not an open link of query {query_id!r}")
        left, right = pair
        index = await self._audit.append_async(
            Entry(
                kind=Kind.LINK_CONFIRMED,
                actor=principal.subject,
                actor_agency=principal.agency,
                decision=Decision.ALLOW if decision.decision == "confirm" else Decision.DENY,
                reasons=(decision.decision,),
                subjects=(
                    self._subjects.reference("local_ref", left),
                    self._subjects.reference("local_ref", right),
                ),
                query_id=query_id,
            )
        )
        self._store.decide(left, right, decision.decision, principal.subject)
        return LinkDecided(decision.link_id, decision.decision, index)

    def queries(
        self, principal: Principal, limit: int, before: dt.datetime | None = None
    ) -> list[FamilyQueryRow]:
        """The newest queries (before ``before``): a caseworker's own, or everyone's."""
        actor = principal.subject if principal.role is Role.CASEWORKER else None
        return list(self._store.queries(actor, before=before, limit=limit))
