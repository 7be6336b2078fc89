"""What the verifier reports: the kinds of tampering, each finding, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Finding", "Report", "TamperKind"]


class TamperKind(StrEnum):
    """What a finding says happened; the IG officer's guide explains each."""

    ENTRY_ALTERED = "entry_altered"
    LEAF_HASH_ALTERED = "leaf_hash_altered"
    PRIVATE_VALUE_ALTERED = "private_value_altered"
    PRIVATE_VALUE_MISSING = "private_value_missing"
    ERASURE_UNLOGGED = "erasure_unlogged"
    ENTRY_DELETED = "entry_deleted"
    ENTRY_INSERTED = "entry_inserted"
    ENTRIES_REORDERED = "entries_reordered"
    MALFORMED_LEAF = "malformed_leaf"
    LOG_TRUNCATED = "log_truncated"
    HISTORY_REWRITTEN = "history_rewritten"
    CHECKPOINT_SIGNATURE_INVALID = "checkpoint_signature_invalid"
    CHECKPOINT_UNKNOWN_KEY = "checkpoint_unknown_key"
    CHECKPOINT_MALFORMED = "checkpoint_malformed"
    CHECKPOINT_FORK = "checkpoint_fork"
    CHECKPOINT_MISSING = "checkpoint_missing"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: ``index`` is the entry concerned, ``tree_size`` the checkpoint's."""

    kind: TamperKind
    detail: str
    index: int | None = None
    tree_size: int | None = None


@dataclass(slots=True)
class Report:
    """The outcome of a verification; ``ok`` when nothing was found."""

    entries: int = 0
    checkpoints: int = 0
    signed_size: int = 0
    erased: int = 0
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    roots: dict[int, bytes] = field(default_factory=dict)
    """The root the entries rebuild at each signed checkpoint's size where they match it."""
    proof: list[bytes] | None = None
    """With a kept checkpoint, and when the log verified: the consistency proof from it
    to the newest signed checkpoint (``signed_size``), built from the entries."""
    unsigned_times: tuple[int, int] | None = None
    """The earliest and latest time (microseconds since 1970, as the entries say) of
    the entries after ``signed_size``, which no checkpoint covers."""

    @property
    def unsigned(self) -> int:
        """How many entries, the newest, no signed checkpoint covers."""
        return self.entries - self.signed_size

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        """The first finding: the lowest entry index, else the first bad checkpoint."""
        if not self.findings:
            return None
        return min(self.findings, key=lambda f: (f.index is None, f.index or 0, f.tree_size or 0))
