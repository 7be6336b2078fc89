"""What an IG officer does with the audit log: search it, prove it, review break-glass
use, and look at anomalies. Audit errors become broker errors here, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from audit import Report, merkle, verify_store
from audit.checkpoint import Checkpoint, kept_note, open_checkpoint
from audit.entry import Entry, Kind, StoredEntry
from audit.errors import (
    AuditError,
    CheckpointError,
    EntryError,
    EntryNotFound,
    ProofError,
    ReceiptTimeout,
)
from audit.log import AuditLog
from audit.search import SearchQuery, get_leaf
from broker._audit import record_read
from broker.db import Database
from broker.errors import (
    BrokerError,
    CheckpointRejected,
    Conflict,
    InvalidChange,
    InvalidRequest,
    NotFound,
    StoreUnavailable,
)
from broker.identity.principal import Principal
from broker.oversight import repository
from broker.oversight.anomalies import Thresholds, detect
from broker.oversight.models import BreakGlassReviewRow
from broker.oversight.schemas import (
    AnomalyReport,
    AuditEntryView,
    AuditFinding,
    AuditPage,
    AuditSearch,
    BreakGlassItem,
    BreakGlassQueue,
    CheckpointView,
    ConsistencyView,
    Digests,
    EntryWithProof,
    ErasureIn,
    ErasureOut,
    ErasureView,
    Identifier,
    InclusionProofView,
    ReviewIn,
    ReviewView,
)
from broker.subjects import SubjectKeys

__all__ = ["OversightService", "entry_view", "read_all", "translate"]

_log = structlog.get_logger("junction.oversight")
_PAGE = 500
_REVIEW_LOCK = "break-glass-review"
"""The database lock every broker process takes to review a break-glass use."""
_REVIEWED = "reviewed_entry:"
_LOG_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Entry times are microseconds since this instant: the log holds nothing before it."""


@contextmanager
def translate() -> Iterator[None]:
    """Turn what the audit library raises into the broker's errors."""
    try:
        yield
    except EntryNotFound as exc:
        raise NotFound(exc.detail) from None
    except CheckpointError as exc:
        raise CheckpointRejected(exc.detail) from None
    except (ProofError, EntryError) as exc:
        raise InvalidRequest(exc.detail) from None
    except ReceiptTimeout as exc:
        raise StoreUnavailable(f"{exc.detail}; try again in a moment") from None
    except AuditError as exc:
        raise StoreUnavailable(f"the audit log cannot be read: {exc.detail}") from None


def read_all(audit: AuditLog, query: SearchQuery) -> list[StoredEntry]:
    """Every entry matching ``query`` (its ``before`` and ``limit`` ignored), newest first."""
    found: list[StoredEntry] = []
    before = None
    with translate():
        while True:
            page = audit.search(replace(query, before=before, limit=_PAGE))
            found.extend(page.entries)
            if page.next_before is None:
                return found
            before = page.next_before


def entry_view(stored: StoredEntry) -> AuditEntryView:
    """What an IG officer sees of one entry: the leaf, plus private values unless erased."""
    fields = stored.fields
    erasure = None
    if stored.erasure is not None:
        gone = stored.erasure
        erasure = ErasureView(
            erased_at=gone.erased_at,
            erased_by=gone.erased_by,
            reason=gone.reason,
            erasure_index=gone.erasure_index,
            text=f"erased on {gone.erased_at.date().isoformat()} by {gone.erased_by}",
        )
    return AuditEntryView(
        index=stored.index,
        time=stored.time,
        kind=stored.kind,
        actor=str(fields["actor"]),
        actor_agency=fields.get("actor_agency"),
        counterparty_agency=fields.get("counterparty_agency"),
        purpose=fields.get("purpose"),
        legal_basis=fields.get("legal_basis"),
        decision=fields.get("decision"),
        reasons=list(fields.get("reasons", [])),
        fields_released=list(fields.get("fields_released", [])),
        subjects=list(fields.get("subjects", [])),
        digests=Digests(
            request=fields.get("request_digest"),
            response=fields.get("response_digest"),
            policy=fields.get("policy_digest"),
        ),
        query_id=fields.get("query_id"),
        exchange_id=fields.get("exchange_id"),
        erases=fields.get("erases"),
        private={} if erasure else dict(stored.private),
        erasure=erasure,
        leaf_hash=stored.leaf_hash.hex(),
    )


class OversightService:
    """The IG officers' reads of the audit log and their break-glass reviews."""

    def __init__(
        self,
        *,
        audit: AuditLog,
        db: Database,
        subjects: SubjectKeys,
        thresholds: Thresholds | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        proof_timeout: float = 5.0,
    ) -> None:
        self._audit = audit
        self._db = db
        self._subjects = subjects
        self._thresholds = thresholds or Thresholds()
        self._clock = clock
        self._proof_timeout = proof_timeout

    @property
    def clock(self) -> Callable[[], datetime]:
        return self._clock

    def references(self, identifiers: Sequence[Identifier]) -> list[str]:
        """The keyed subject references of ``identifiers``: the person's own, and those
        of agencies' records holding them. Raises ``InvalidRequest``."""
        try:
            refs = [self._subjects.reference(i.kind, i.value) for i in identifiers]
        except InvalidChange as exc:  # a search changes nothing: the request is what is wrong
            raise InvalidRequest(exc.detail) from None
        refs += self._subjects.held_references((i.kind, i.value) for i in identifiers)
        return list(dict.fromkeys(refs))

    # -- search ---------------------------------------------------------------------

    def search(self, principal: Principal, body: AuditSearch) -> AuditPage:
        """One page of entries matching ``body``, newest first.

        A person's identifiers are searched as their keyed references; entries filed
        under any of them are returned once. A search that names a person is itself
        logged (``record_access``) before its page is returned. Raises
        ``InvalidRequest`` for a malformed identifier or range, ``StoreUnavailable`` if
        the log cannot be read or cannot record the search.
        """
        if body.since and body.until and body.since >= body.until:
            raise InvalidRequest("'since' must be earlier than 'until'")
        base = SearchQuery(
            actor=body.actor,
            actor_agency=body.actor_agency,
            counterparty_agency=body.counterparty_agency,
            purpose=body.purpose,
            kind=body.kind.value if body.kind else None,
            decision=body.decision.value if body.decision else None,
            query_id=body.query_id,
            since=body.since,
            until=body.until,
            before=body.cursor,
            limit=body.limit,
        )
        refs = self.references(body.identifiers) if body.identifiers else [None]
        merged: dict[int, StoredEntry] = {}
        more = False
        with translate():
            for ref in refs:
                page = self._audit.search(replace(base, subject=ref))
                more = more or page.next_before is not None
                merged.update((e.index, e) for e in page.entries)
        newest = sorted(merged.values(), key=lambda e: e.index, reverse=True)
        more = more or len(newest) > body.limit
        shown = newest[: body.limit]
        if body.identifiers:
            self.record_access(
                principal,
                [ref for ref in refs if ref is not None],
                "audit_search",
                body.model_dump(mode="json", exclude={"identifiers"}),
            )
        return AuditPage(
            entries=[entry_view(e) for e in shown],
            next_cursor=shown[-1].index if more and shown else None,
        )

    def record_access(
        self, principal: Principal, refs: Sequence[str], action: str, request: Mapping[str, Any]
    ) -> int:
        """Log that ``principal`` read the audit records filed under ``refs`` (a person's
        references) by ``action``; return the entry's index.

        The entry is filed under the same references, so the next search or subject
        access report for the person lists it. ``request`` is what was asked besides the
        identifiers: its digest, with the references, goes in the leaf, and no
        identifier does. Raises ``StoreUnavailable`` if the log cannot take the entry:
        what was read must then not be shown.
        """
        return record_read(
            self._audit,
            Kind.AUDIT_ACCESS,
            principal,
            action=action,
            subjects=refs,
            request=request,
        )

    # -- proofs ---------------------------------------------------------------------

    def _latest(self) -> tuple[str, Checkpoint]:
        # One read of the note, parsed with it: the note and its tree always agree.
        signed = self._audit.latest_signed_checkpoint()
        if signed is None:
            raise NotFound("the audit log has no signed checkpoint yet; it is empty")
        return signed[1], signed[0]

    def checkpoint(self) -> CheckpointView:
        """The latest signed checkpoint. Raises ``NotFound`` while the log is empty."""
        with translate():
            note, latest = self._latest()
        return CheckpointView(
            origin=latest.origin,
            tree_size=latest.size,
            root_hash=latest.root_hash.hex(),
            note=note,
            verifier_key=self._audit.verifier.verifier_key(),
        )

    def read_entry(self, principal: Principal, index: int) -> EntryWithProof:
        """``entry`` as an officer reads it: an entry filed under a person is a read of
        their record, logged (``record_access``) before it is returned.

        Raises ``NotFound`` for an index the log does not hold, ``StoreUnavailable`` if
        the log cannot record the read.
        """
        found = self.entry(index)
        if found.entry.subjects:
            self.record_access(principal, found.entry.subjects, "audit_entry", {"index": index})
        return found

    def entry(self, index: int) -> EntryWithProof:
        """Entry ``index`` with its inclusion proof against the latest signed checkpoint.

        Waits (up to the proof timeout) for a checkpoint covering a brand-new entry.
        Raises ``NotFound`` for an index the log does not hold.
        """
        with translate():
            stored = self._audit.get(index)
            signed = self._audit.latest_signed_checkpoint()
            if signed is None or signed[0].size <= index:
                # A brand-new entry (perhaps the log's first): its checkpoint is due.
                self._audit.receipt(index, self._proof_timeout)
            note, latest = self._latest()
            proof = self._audit.inclusion_proof(index, latest.size)
            leaf = get_leaf(self._audit.store, index)
        return EntryWithProof(
            entry=entry_view(stored),
            proof=InclusionProofView(
                leaf=leaf.decode(),
                leaf_hash=stored.leaf_hash.hex(),
                index=index,
                tree_size=latest.size,
                root_hash=latest.root_hash.hex(),
                inclusion_proof=[h.hex() for h in proof],
                checkpoint=note,
            ),
        )

    def consistency_from_size(self, size: int) -> ConsistencyView:
        """Proof from the tree of ``size`` entries to the latest signed checkpoint.

        Raises ``InvalidRequest`` for a size beyond the latest checkpoint.
        """
        with translate():
            note, latest = self._latest()
            if not 1 <= size <= latest.size:
                raise InvalidRequest(
                    f"from_size must be between 1 and the latest signed size {latest.size}"
                )
            proof = self._audit.consistency_proof(size, latest.size) if size < latest.size else []
        return ConsistencyView(
            from_size=size,
            to_size=latest.size,
            to_root=latest.root_hash.hex(),
            proof=[h.hex() for h in proof],
            checkpoint=note,
            detail="verify the proof against the root you recorded for this size",
        )

    def consistency_from_note(self, pasted: str) -> ConsistencyView:
        """Whether the log still extends the checkpoint ``pasted``, with the proof.

        As ``junction audit consistency`` does, every entry is recomputed and the proof
        built from the entries, not from the stored tree (which could have been left as
        it was when an entry and its stored hash were rewritten): this takes about as
        long as verifying the whole log. Raises ``CheckpointRejected`` if the note is
        malformed, of another log, or not signed by this log's key.
        """
        with translate():
            old = open_checkpoint(
                kept_note(pasted), self._audit.verifier, origin=self._audit.origin
            )
            note, latest = self._latest()
            if old.size > latest.size:
                detail = (
                    f"the pasted checkpoint is of {old.size} entries but the log now signs only"
                    f" {latest.size}: the log was rolled back or forked; keep both notes"
                )
                return _inconsistent(old, latest, note, detail)
            report = verify_store(
                self._audit.store, self._audit.verifier, origin=self._audit.origin, kept=old
            )
            if report.ok and report.signed_size != latest.size:
                # A checkpoint was signed while the log was read: the proof leads to it.
                note = self._audit.store.checkpoint_at(report.signed_size)
                latest = open_checkpoint(note, self._audit.verifier, origin=self._audit.origin)
        return _consistency_view(old, latest, note, report)

    # -- break-glass review ---------------------------------------------------------

    def break_glass_queue(
        self, state: str, limit: int, cursor: int | None = None
    ) -> BreakGlassQueue:
        """Up to ``limit`` break-glass uses older than entry ``cursor`` (if given), newest
        first: ``pending`` (no review), ``reviewed`` or ``all``."""
        uses = read_all(self._audit, SearchQuery(kind=Kind.BREAK_GLASS.value))
        uses = [e for e in uses if cursor is None or e.index < cursor]
        with self._db.session() as session:
            rows = {
                row.entry_index: row
                for row in repository.reviews_of(session, [e.index for e in uses])
            }
        unlisted = [e for e in uses if e.index not in rows]
        if unlisted:
            rows.update(self._logged_reviews(unlisted))
        reviews = {index: _review_view(row) for index, row in rows.items()}
        items = [
            BreakGlassItem(entry=entry_view(e), review=reviews.get(e.index))
            for e in uses
            if state == "all" or (state == "pending") == (e.index not in reviews)
        ]
        shown = items[:limit]
        more = len(items) > limit
        return BreakGlassQueue(items=shown, next_cursor=shown[-1].entry.index if more else None)

    def review(self, principal: Principal, index: int, body: ReviewIn) -> ReviewView:
        """Record an officer's outcome for break-glass entry ``index``, audited first.

        Reviews take turns (across every broker process on the database), so of two
        officers reviewing one use at once, only the first is logged and kept. Raises
        ``NotFound``, ``InvalidChange`` for an entry that is not a break-glass use,
        ``Conflict`` if it was reviewed already, ``StoreUnavailable``.
        """
        with translate():
            stored = self._audit.get(index)
        if stored.kind != Kind.BREAK_GLASS.value:
            raise InvalidChange(
                f"entry {index} is a {stored.kind} entry; only break_glass entries are reviewed"
            )
        with self._db.exclusive(_REVIEW_LOCK):
            with self._db.session() as session:
                done = repository.review(session, index)
            if done is None and (done := self._logged_reviews([stored]).get(index)):
                self._store_review(done)  # the table lost it: keep it there again
            if done is not None:
                raise _already(done)
            review_index = self._log_review(principal, stored, body)
            row = BreakGlassReviewRow(
                entry_index=index,
                outcome=body.outcome,
                reviewed_by=principal.subject,
                reviewer_agency=principal.agency,
                reviewed_at=self._clock(),
                review_entry=review_index,
            )
            self._store_review(row)
        return _review_view(row)

    def _log_review(self, principal: Principal, stored: StoredEntry, body: ReviewIn) -> int:
        fields = stored.fields
        try:
            return self._audit.append(
                Entry(
                    kind=Kind.ACCESS_REVIEW,
                    actor=principal.subject,
                    actor_agency=principal.agency,
                    counterparty_agency=fields.get("actor_agency"),
                    purpose=fields.get("purpose"),
                    reasons=(body.outcome, f"{_REVIEWED}{stored.index}"),
                    subjects=tuple(fields.get("subjects", ())),
                    # The reviewed leaf's hash binds the review to exactly that entry.
                    request_digest=stored.leaf_hash.hex(),
                    query_id=fields.get("query_id"),
                    private={"note": body.note},
                )
            )
        except AuditError as exc:
            raise StoreUnavailable(
                f"the audit log could not record the review, so it was not made: {exc}"
            ) from None

    def _logged_reviews(self, uses: Sequence[StoredEntry]) -> dict[int, BreakGlassReviewRow]:
        """The reviews of ``uses`` that the log holds though the review table does not
        (its write failed after the log took the entry), by the reviewed index."""
        query_id = uses[0].fields.get("query_id") if len(uses) == 1 else None
        wanted = {e.leaf_hash.hex(): e.index for e in uses}
        found: dict[int, BreakGlassReviewRow] = {}
        query = SearchQuery(kind=Kind.ACCESS_REVIEW.value, query_id=query_id)
        # Oldest first: the first review of a use is the one that took effect.
        for entry in reversed(read_all(self._audit, query)):
            fields = entry.fields
            reasons = list(fields.get("reasons", []))
            index = wanted.get(str(fields.get("request_digest")))
            if index is None or index in found or f"{_REVIEWED}{index}" not in reasons:
                continue
            found[index] = BreakGlassReviewRow(
                entry_index=index,
                outcome=reasons[0],
                reviewed_by=str(fields["actor"]),
                reviewer_agency=str(fields.get("actor_agency") or ""),
                reviewed_at=entry.time,
                review_entry=entry.index,
            )
        return found

    def _store_review(self, row: BreakGlassReviewRow) -> None:
        """Keep ``row`` in the review table, which only spares the queue a read of the
        log: the logged review has taken effect whether or not this succeeds."""
        try:
            with self._db.session(write=True) as session:
                repository.add_review(session, row)
        except (StoreUnavailable, Conflict) as exc:
            _log.warning(
                "review_not_stored",
                entry=row.entry_index,
                review_entry=row.review_entry,
                error=exc.detail,
            )

    # -- erasure -------------------------------------------------------------------

    def erase(self, principal: Principal, index: int, body: ErasureIn) -> ErasureOut:
        """Delete entry ``index``'s private values, recorded as an erasure entry.

        The leaf, and so the tree and every checkpoint, stay as they are. Raises
        ``NotFound``, ``InvalidChange`` for an erasure entry or one holding no private
        values, ``Conflict`` if it was erased already, ``StoreUnavailable``.
        """
        with translate():
            stored = self._audit.get(index)
        if stored.kind == Kind.ERASURE.value:
            raise InvalidChange(
                f"entry {index} is an erasure entry: it holds no private values, and it is"
                " the record of an erasure, which stays"
            )
        if stored.erasure is not None:
            raise _erased(index, stored.erasure.erasure_index)
        if not stored.private:
            raise InvalidChange(f"entry {index} holds no private values: there is nothing to erase")
        erasure = Entry(
            kind=Kind.ERASURE,
            actor=principal.subject,
            actor_agency=principal.agency,
            erases=index,
            reasons=(body.reason,),
            # Filed under the erased entry's people, so their subject access report says
            # that a record of an access to them was erased, when and by whom.
            subjects=tuple(stored.fields.get("subjects", ())),
        )
        try:
            erasure_index = self._audit.append(erasure)
        except EntryError:
            # Another officer's erasure of it was logged first.
            with translate():
                done = self._audit.get(index).erasure
            if done is None:
                raise
            raise _erased(index, done.erasure_index) from None
        except AuditError as exc:
            raise StoreUnavailable(
                f"the audit log could not record the erasure, so it was not made: {exc}"
            ) from None
        return ErasureOut(
            erased_index=index,
            erasure_index=erasure_index,
            erased_by=principal.subject,
            reason=body.reason,
        )

    # -- anomalies ------------------------------------------------------------------

    def anomalies(self, since: datetime | None, until: datetime | None) -> AnomalyReport:
        """Flags raised in ``[since, until)`` (default: the 7 days up to now)."""
        until = until or self._clock()
        if until <= _LOG_EPOCH:
            raise InvalidRequest("'until' is before 1970: the log holds nothing that early")
        # A window from further back than the log can hold starts where it can.
        since = max(since or until - timedelta(days=7), _LOG_EPOCH)
        if since >= until:
            raise InvalidRequest("'since' must be earlier than 'until'")
        limits = self._thresholds
        # Each rule reads back only as far as it needs: matches (the bulk of the log)
        # only for queries inside the window.
        volume_history = since - timedelta(days=limits.volume_history_days + 1)
        starts = {
            Kind.QUERY_SUBMITTED: volume_history,
            Kind.REFUSAL: volume_history,
            Kind.MATCH: since,
            Kind.BREAK_GLASS: since - timedelta(days=limits.break_glass_days),
            Kind.AUDIT_ACCESS: volume_history,
            Kind.CONSENT_LOOKUP: volume_history,
        }
        entries: list[StoredEntry] = []
        for kind, start in starts.items():
            query = SearchQuery(kind=kind.value, since=start, until=until)
            entries += read_all(self._audit, query)
        return AnomalyReport(
            since=since,
            until=until,
            thresholds=self._thresholds.as_dict(),
            flags=detect(entries, since=since, until=until, thresholds=self._thresholds),
        )


def _consistency_view(
    old: Checkpoint, latest: Checkpoint, note: str, report: Report
) -> ConsistencyView:
    """What the verification of the log against the pasted checkpoint ``old`` found."""
    proof = report.proof if report.ok else None
    if proof is not None:
        try:
            if old.size:
                merkle.verify_consistency(
                    old.size, latest.size, old.root_hash, latest.root_hash, proof
                )
        except ProofError as exc:
            detail = f"the log's history differs from the pasted checkpoint: {exc.detail}"
            return _inconsistent(old, latest, note, detail)
        return ConsistencyView(
            from_size=old.size,
            to_size=latest.size,
            from_root=old.root_hash.hex(),
            to_root=latest.root_hash.hex(),
            proof=[h.hex() for h in proof],
            checkpoint=note,
            consistent=True,
            prefix_intact=True,
            detail="the current log extends the pasted checkpoint; every entry was recomputed",
        )
    first = report.first
    finding = None
    if first is None:
        problem = "the entries do not give the whole consistency proof"
    else:
        where = f"checkpoint {first.tree_size}" if first.index is None else f"entry {first.index}"
        problem = f"{first.kind.value} at {where}: {first.detail}"
        finding = AuditFinding(
            kind=first.kind.value, index=first.index, tree_size=first.tree_size, detail=first.detail
        )
    intact = report.roots.get(old.size) == old.root_hash
    if intact:
        detail = (
            f"the log's first {old.size} entries still match the pasted checkpoint, but the log"
            f" did not verify after them: {problem}; run junction audit verify"
        )
    else:
        detail = (
            f"the log's history differs from the pasted checkpoint: {problem};"
            " keep the signed note and this report as evidence"
        )
    return _inconsistent(old, latest, note, detail, intact=intact, finding=finding)


def _inconsistent(
    old: Checkpoint,
    latest: Checkpoint,
    note: str,
    detail: str,
    *,
    intact: bool = False,
    finding: AuditFinding | None = None,
) -> ConsistencyView:
    return ConsistencyView(
        from_size=old.size,
        to_size=latest.size,
        from_root=old.root_hash.hex(),
        to_root=latest.root_hash.hex(),
        proof=[],
        checkpoint=note,
        consistent=False,
        prefix_intact=intact,
        finding=finding,
        detail=detail,
    )


def _review_view(row: BreakGlassReviewRow) -> ReviewView:
    return ReviewView(
        entry_index=row.entry_index,
        outcome=row.outcome,
        reviewed_by=row.reviewed_by,
        reviewer_agency=row.reviewer_agency,
        reviewed_at=row.reviewed_at,
        review_entry=row.review_entry,
    )


def _erased(index: int, erasure_index: int) -> BrokerError:
    return Conflict(f"entry {index} was already erased by entry {erasure_index}")


def _already(row: BreakGlassReviewRow) -> BrokerError:
    return Conflict(
        f"entry {row.entry_index} was already reviewed ({row.outcome}) by {row.reviewed_by}"
        f" on {row.reviewed_at.date().isoformat()}, recorded as entry {row.review_entry}"
    )
