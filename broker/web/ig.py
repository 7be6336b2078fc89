"""What the IG officers' pages read from the audit log, and the checks they run.

Built on ``audit.AuditLog`` (search, entries, proofs, checkpoints); every proof is
checked with ``audit.merkle``'s verification functions against the latest checkpoint,
whose signature ``AuditLog.latest_checkpoint`` has already checked with the log key.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from audit import (
    AuditError,
    AuditLog,
    Page,
    SearchQuery,
    StoredEntry,
    open_checkpoint,
    verify_store,
)
from audit.errors import EntryNotFound
from audit.merkle import verify_consistency, verify_inclusion
from audit.verify import Report
from broker.errors import NotFound, StoreUnavailable
from broker.subjects import SubjectKeys
from broker.web.chart import Chart, stack

__all__ = ["AuditFilters", "Check", "CheckpointInfo", "Flag", "IgReader"]

PAGE_SIZE = 25
_SCAN_LIMIT = 5000
_DAY_STARTS, _DAY_ENDS = 7, 20
_BUSY_PER_HOUR = 20


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """The audit search's filters (those of ``audit.SearchQuery``), as the form sends them."""

    actor: str | None = None
    actor_agency: str | None = None
    counterparty_agency: str | None = None
    purpose: str | None = None
    kind: str | None = None
    decision: str | None = None
    query_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None

    def query(self, limit: int = PAGE_SIZE) -> SearchQuery:
        return SearchQuery(
            actor=self.actor,
            actor_agency=self.actor_agency,
            counterparty_agency=self.counterparty_agency,
            purpose=self.purpose,
            kind=self.kind,
            decision=self.decision,
            query_id=self.query_id,
            since=self.since,
            until=self.until,
            before=self.before,
            limit=limit,
        )


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of a proof check, in words a reader can act on."""

    verified: bool
    summary: str
    detail: str
    tree_size: int | None = None
    root_hash: str | None = None
    proof: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    note: str
    size: int
    root_hash: str


@dataclass(frozen=True, slots=True)
class Flag:
    rule: str
    title: str
    actor: str
    detail: str
    entries: tuple[int, ...]


class IgReader:
    """Reads and checks the audit log for the IG pages. Safe for concurrent use."""

    def __init__(self, audit: AuditLog, subjects: SubjectKeys) -> None:
        self._audit = audit
        self._subjects = subjects

    def search(self, filters: AuditFilters) -> Page:
        """One page of matching entries, newest first. Raises ``StoreUnavailable``."""
        try:
            return self._audit.search(filters.query())
        except AuditError as exc:
            raise StoreUnavailable(f"the audit log cannot be searched now: {exc}") from None

    def entry(self, index: int) -> StoredEntry:
        """Entry ``index``. Raises ``NotFound`` or ``StoreUnavailable``."""
        try:
            return self._audit.get(index)
        except EntryNotFound:
            raise NotFound(f"there is no audit entry {index}") from None
        except AuditError as exc:
            raise StoreUnavailable(f"the audit log cannot be read now: {exc}") from None

    def checkpoint(self) -> CheckpointInfo | None:
        """The latest signed checkpoint, its signature checked; ``None`` before the first."""
        note = self._audit.latest_checkpoint_note()
        if note is None:
            return None
        checkpoint = open_checkpoint(note, self._audit.verifier, origin=self._audit.origin)
        return CheckpointInfo(
            note, checkpoint.size, base64.b64encode(checkpoint.root_hash).decode()
        )

    async def verify_entry(self, index: int) -> Check:
        """Check entry ``index``'s inclusion proof against the latest signed checkpoint.

        Waits up to 5 s for a checkpoint that covers a brand-new entry. Raises
        ``NotFound``.
        """
        stored = await asyncio.to_thread(self.entry, index)
        try:
            await self._audit.receipt_async(index, timeout=5.0)
            checkpoint = await asyncio.to_thread(self._audit.latest_checkpoint)
            if checkpoint is None:
                return Check(False, "Not verified", "The log has no signed checkpoint yet.")
            proof = await asyncio.to_thread(self._audit.inclusion_proof, index, checkpoint.size)
        except AuditError as exc:
            return Check(False, "Not verified", f"The proof could not be made: {exc}")
        root = base64.b64encode(checkpoint.root_hash).decode()
        hexes = tuple(h.hex() for h in proof)
        try:
            verify_inclusion(stored.leaf_hash, index, checkpoint.size, proof, checkpoint.root_hash)
        except AuditError as exc:
            return Check(
                False,
                "Not verified",
                f"The proof does not hold: {exc}",
                checkpoint.size,
                root,
                hexes,
            )
        return Check(
            True,
            "Verified",
            f"Entry {index} is in the log: its inclusion proof leads to the root of the "
            f"signed checkpoint of size {checkpoint.size}, and the checkpoint's signature "
            "is the log key's.",
            checkpoint.size,
            root,
            hexes,
        )

    def consistency(self, pasted: str) -> Check:
        """Check that the log now extends a checkpoint someone kept (signed-note text)."""
        note = pasted.replace("\r\n", "\n").strip("\n") + "\n"
        try:
            old = open_checkpoint(note, self._audit.verifier, origin=self._audit.origin)
        except AuditError as exc:
            return Check(False, "Not a checkpoint of this log", f"{exc}")
        try:
            new = self._audit.latest_checkpoint()
            if new is None:
                return Check(False, "Not verified", "The log has no signed checkpoint yet.")
            proof = self._audit.consistency_proof(old.size, new.size) if old.size < new.size else []
            verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
        except AuditError as exc:
            return Check(False, "Not consistent", f"The log does not extend that checkpoint: {exc}")
        return Check(
            True,
            "Consistent",
            f"The log of size {new.size} extends the checkpoint of size {old.size} you gave: "
            "nothing recorded up to then was changed or removed.",
            new.size,
            base64.b64encode(new.root_hash).decode(),
            tuple(h.hex() for h in proof),
        )

    def verify_all(self) -> Report:
        """Recompute the whole log and compare it with every signed checkpoint."""
        return verify_store(self._audit.store, self._audit.verifier, origin=self._audit.origin)

    def _scan(self, **filters: object) -> list[StoredEntry]:
        found: list[StoredEntry] = []
        before = None
        while len(found) < _SCAN_LIMIT:
            page = self._audit.search(SearchQuery(before=before, limit=500, **filters))  # type: ignore[arg-type]
            found.extend(page.entries)
            if page.next_before is None:
                break
            before = page.next_before
        return found

    def break_glass(self) -> list[StoredEntry]:
        """Every break-glass use, newest first."""
        return self._scan(kind="break_glass")

    def subject_access(self, kind: str, value: str) -> list[StoredEntry]:
        """Every entry about the person an identifier names, newest first.

        Raises ``InvalidChange`` for an identifier that is not well formed.
        """
        reference = self._subjects.reference(kind, value)
        return self._scan(subject=reference)

    def anomalies(self, days: int = 30) -> list[Flag]:
        """Patterns to look at: out-of-hours queries, bursts, break-glass, refusals."""
        since = datetime.now(UTC) - timedelta(days=days)
        queries = self._scan(kind="query_submitted", since=since)
        flags: list[Flag] = []
        late = [e for e in queries if not _DAY_STARTS <= e.time.hour < _DAY_ENDS]
        for actor, items in _by_actor(late).items():
            flags.append(
                Flag(
                    "out_of_hours",
                    "Queries out of hours",
                    actor,
                    f"{len(items)} queries before {_DAY_STARTS}:00 or after {_DAY_ENDS}:00 UTC",
                    tuple(e.index for e in items),
                )
            )
        hours = Counter(
            (e.fields["actor"], e.time.replace(minute=0, second=0, microsecond=0)) for e in queries
        )
        for (actor, hour), count in sorted(hours.items()):
            if count > _BUSY_PER_HOUR:
                items = [
                    e
                    for e in queries
                    if e.fields["actor"] == actor
                    and e.time.replace(minute=0, second=0, microsecond=0) == hour
                ]
                flags.append(
                    Flag(
                        "volume",
                        "Many queries in one hour",
                        actor,
                        f"{count} queries in the hour from {hour:%H:00 %d %b %Y} "
                        f"(more than {_BUSY_PER_HOUR})",
                        tuple(e.index for e in items),
                    )
                )
        for actor, items in _by_actor(self._scan(kind="break_glass", since=since)).items():
            flags.append(
                Flag(
                    "break_glass",
                    "Emergency access used",
                    actor,
                    f"{len(items)} break-glass uses in {days} days; each needs a review",
                    tuple(e.index for e in items),
                )
            )
        for actor, items in _by_actor(self._scan(kind="refusal", since=since)).items():
            flags.append(
                Flag(
                    "refusals",
                    "Queries refused by policy",
                    actor,
                    f"{len(items)} refused queries in {days} days",
                    tuple(e.index for e in items),
                )
            )
        return flags

    def activity(self, days: int = 30) -> tuple[Chart, Chart]:
        """Exchanges (fetches from agencies) over time, by purpose and by agency."""
        since = datetime.now(UTC) - timedelta(days=days)
        fetches = self._scan(kind="fetch", since=since)
        by_purpose = stack(
            "Exchanges by purpose",
            ((e.time, str(e.fields.get("purpose") or "none")) for e in fetches),
        )
        by_agency = stack(
            "Exchanges by agency",
            ((e.time, str(e.fields.get("counterparty_agency") or "none")) for e in fetches),
        )
        return by_purpose, by_agency


def _by_actor(entries: list[StoredEntry]) -> dict[str, list[StoredEntry]]:
    grouped: dict[str, list[StoredEntry]] = {}
    for entry in entries:
        grouped.setdefault(str(entry.fields["actor"]), []).append(entry)
    return grouped
