"""What the IG officers' pages read and check, through the oversight services.

Searches, entries with their proofs, consistency, break-glass reviews, anomaly flags and
subject access reports come from ``broker.oversight`` (the same services as the JSON
API). The page's "verify" is checked here, independently of how the proof was made:
the checkpoint's signature with the log key, the leaf hash from the leaf, and the root
from the leaf hash and the audit path with ``audit.merkle.verify_inclusion``.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from audit import (
    AuditError,
    AuditLog,
    Report,
    SearchQuery,
    StoredEntry,
    open_checkpoint,
    verify_store,
)
from audit.merkle import leaf_hash, verify_inclusion
from broker.errors import BrokerError, NotFound
from broker.identity.principal import Principal
from broker.oversight.sar import SubjectAccessReports
from broker.oversight.schemas import (
    AnomalyReport,
    AuditPage,
    AuditSearch,
    BreakGlassQueue,
    CheckpointView,
    EntryWithProof,
    ReviewIn,
    ReviewView,
    SubjectAccessIn,
    SubjectAccessReport,
)
from broker.oversight.service import OversightService
from broker.web.chart import Chart, stack
from broker.web.errors import sentence

__all__ = ["PAGE_SIZE", "Activity", "Check", "IgReader"]

PAGE_SIZE = 25
_SCAN_LIMIT = 5000
ANOMALY_DAYS = 30


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of a proof check, in words a reader can act on."""

    verified: bool
    summary: str
    detail: str
    tree_size: int | None = None
    root_hash: str | None = None
    proof_length: int = 0


@dataclass(frozen=True, slots=True)
class Activity:
    """The activity charts; ``counted_from`` is set when only the newest ``counted``
    exchanges (back to then) could be counted, not every one of the period."""

    charts: list[Chart]
    counted: int
    counted_from: datetime | None = None


class IgReader:
    """The IG pages' reads and checks. Safe for concurrent use."""

    def __init__(
        self,
        oversight: OversightService,
        reports: SubjectAccessReports,
        audit: AuditLog,
        *,
        scan_limit: int = _SCAN_LIMIT,
    ) -> None:
        self._oversight = oversight
        self._reports = reports
        self._audit = audit
        self._scan_limit = scan_limit

    def search(self, principal: Principal, body: AuditSearch) -> AuditPage:
        """One page of matching entries, newest first. Raises ``InvalidRequest``."""
        return self._oversight.search(principal, body)

    def entry(self, principal: Principal, index: int) -> EntryWithProof:
        """Entry ``index`` with its proof, as ``principal`` reads it: one filed under a
        person is a read of their record, logged first as the API logs it.

        Raises ``NotFound``, or ``StoreUnavailable`` if the read cannot be logged.
        """
        return self._oversight.read_entry(principal, index)

    def checkpoint(self) -> CheckpointView | None:
        """The latest signed checkpoint; ``None`` while the log is empty."""
        try:
            return self._oversight.checkpoint()
        except NotFound:
            return None

    async def verify_entry(self, index: int) -> Check:
        """Check entry ``index``'s inclusion proof against the latest signed checkpoint.

        Raises ``NotFound`` for an index the log does not hold.
        """
        found = await asyncio.to_thread(self._oversight.entry, index)
        proof = found.proof
        try:
            checkpoint = open_checkpoint(
                proof.checkpoint, self._audit.verifier, origin=self._audit.origin
            )
        except AuditError as exc:
            return Check(False, "Not verified", f"The checkpoint's signature does not hold: {exc}")
        root = base64.b64encode(checkpoint.root_hash).decode()
        computed = leaf_hash(proof.leaf.encode())
        if computed.hex() != proof.leaf_hash:
            return Check(
                False,
                "Not verified",
                f"Entry {index}'s stored leaf hash is not the hash of its leaf: the entry was "
                "changed after it was logged.",
                checkpoint.size,
                root,
            )
        try:
            verify_inclusion(
                computed,
                index,
                checkpoint.size,
                [bytes.fromhex(h) for h in proof.inclusion_proof],
                checkpoint.root_hash,
            )
        except AuditError as exc:
            return Check(
                False,
                "Not verified",
                f"The proof does not lead to the signed root: {exc}",
                checkpoint.size,
                root,
                len(proof.inclusion_proof),
            )
        return Check(
            True,
            "Verified",
            f"Entry {index} is in the log: its leaf hashes to the stored leaf hash, its "
            f"inclusion proof leads to the root of the signed checkpoint of size "
            f"{checkpoint.size}, and the checkpoint's signature is the log key's.",
            checkpoint.size,
            root,
            len(proof.inclusion_proof),
        )

    def consistency(self, pasted: str) -> Check:
        """Whether the log still extends a checkpoint someone kept (signed-note text)."""
        try:
            view = self._oversight.consistency_from_note(pasted)
        except BrokerError as exc:
            return Check(False, "Not a checkpoint of this log", sentence(exc.detail))
        if view.consistent:
            return Check(
                True,
                "Consistent",
                f"The log of size {view.to_size} extends the checkpoint of size "
                f"{view.from_size} you gave: nothing recorded up to then was changed or "
                "removed.",
                view.to_size,
                view.to_root,
                len(view.proof),
            )
        # Every entry was recomputed: damage after the kept checkpoint is not a rewrite of
        # what it signs, and the officer is told which it is.
        summary = "Damaged after your checkpoint" if view.prefix_intact else "Not consistent"
        return Check(False, summary, sentence(view.detail))

    def verify_all(self) -> Report:
        """Recompute the whole log and compare it with every signed checkpoint."""
        return verify_store(self._audit.store, self._audit.verifier, origin=self._audit.origin)

    def break_glass(self, state: str) -> BreakGlassQueue:
        """Break-glass uses, newest first: ``pending``, ``reviewed`` or ``all``."""
        return self._oversight.break_glass_queue(state, 200)

    def review_of(self, index: int) -> ReviewView | None:
        """The review recorded for break-glass entry ``index``; ``None`` if there is none
        (or it is older than the last ``_SCAN_LIMIT`` reviews)."""
        queue = self._oversight.break_glass_queue("reviewed", _SCAN_LIMIT)
        return next((item.review for item in queue.items if item.entry.index == index), None)

    def review(self, principal: Principal, index: int, body: ReviewIn) -> ReviewView:
        """Record an officer's finding on a break-glass use. Raises ``BrokerError``."""
        return self._oversight.review(principal, index, body)

    def anomalies(self) -> AnomalyReport:
        """Flags raised in the last ``ANOMALY_DAYS`` days."""
        now = self._oversight.clock()
        return self._oversight.anomalies(now - timedelta(days=ANOMALY_DAYS), now)

    def subject_access(self, principal: Principal, body: SubjectAccessIn) -> SubjectAccessReport:
        """Every recorded access to one person's data. Raises ``InvalidChange``."""
        return self._reports.report(principal, body)

    def _scan(self, **filters: object) -> tuple[list[StoredEntry], bool]:
        """The newest matching entries, at most the scan limit; and whether that was all."""
        found: list[StoredEntry] = []
        before = None
        while True:
            wanted = min(500, self._scan_limit - len(found))
            query = SearchQuery(before=before, limit=wanted, **filters)  # type: ignore[arg-type]
            page = self._audit.search(query)
            found.extend(page.entries)
            if page.next_before is None:
                return found, True
            if len(found) >= self._scan_limit:
                return found, False
            before = page.next_before

    def activity(self, days: int = 30) -> Activity:
        """Exchanges (requests to agencies) over time, by purpose and by agency."""
        since = datetime.now(UTC) - timedelta(days=days)
        fetches, complete = self._scan(kind="fetch", since=since)
        by_purpose = stack(
            "Exchanges by purpose",
            ((e.time, str(e.fields.get("purpose") or "none")) for e in fetches),
        )
        by_agency = stack(
            "Exchanges by agency",
            ((e.time, str(e.fields.get("counterparty_agency") or "none")) for e in fetches),
        )
        counted_from = None if complete else min(e.time for e in fetches)
        return Activity([by_purpose, by_agency], len(fetches), counted_from)
