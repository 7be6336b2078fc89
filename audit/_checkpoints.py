"""The signed checkpoints, held against the tree that the entries rebuild.

Opens each stored checkpoint with the log's key, rebuilds the tree chunk by chunk and
compares its root at each checkpoint's size with the root the checkpoint signs (RFC
6962 §2.1), and, where they differ, tells a rewritten entry from a fork or a rewritten
history. With a checkpoint kept outside the log, it also builds the consistency proof
from it to the newest one (RFC 6962 §2.1.2) from the entries' own leaf hashes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from audit._chunks import Checked
from audit._misstored import misstored_note
from audit._report import Finding, Report, TamperKind
from audit.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from audit.errors import CheckpointError, CheckpointFormatError, CheckpointUnknownSigner, ProofError
from audit.merkle import (
    HASH_SIZE,
    CompactRange,
    NodeId,
    NodeReader,
    SubtreeBuilder,
    consistency_proof,
    consistency_ranges,
    fold_frontier,
    inclusion_proof,
    perfect_cover,
    verify_inclusion,
)

__all__ = [
    "UNSIGNED_WINDOW",
    "Tree",
    "classify_mismatch",
    "missing_checkpoints",
    "open_checkpoints",
    "refine",
    "with_kept",
]

UNSIGNED_WINDOW = 300.0
"""Seconds of entries (by their own times) that may wait for a checkpoint, by default.
The log signs one within 0.2 s of writing an entry by default and a connector's within
at most 60 s, so a longer run of entries that no checkpoint covers was not left so by
the log."""
_PINPOINT_LIMIT = 4096
"""Leaf hashes kept since the last checkpoint that matched, to name a rewritten entry."""


def open_checkpoints(
    stored: Sequence[tuple[int, object]], verifier: NoteVerifier, origin: str, report: Report
) -> list[Checkpoint]:
    """The stored checkpoints that verify with the log's key, one per size, by size.

    Each that does not (unknown key, malformed or not stored as text, bad signature, a
    second root for a size) becomes a finding in ``report``; every one is counted there.
    """
    trusted: dict[int, Checkpoint] = {}
    for size, note in stored:
        report.checkpoints += 1
        misstored = misstored_note(size, note)
        if misstored is not None:
            report.findings.append(misstored)
            continue
        assert isinstance(note, str)  # noqa: S101 - misstored_note makes sure
        try:
            checkpoint = open_checkpoint(note, verifier, origin=origin)
        except CheckpointUnknownSigner as exc:
            report.findings.append(
                Finding(TamperKind.CHECKPOINT_UNKNOWN_KEY, exc.detail, None, size)
            )
            continue
        except CheckpointFormatError as exc:
            report.findings.append(Finding(TamperKind.CHECKPOINT_MALFORMED, exc.detail, None, size))
            continue
        except CheckpointError as exc:
            report.findings.append(
                Finding(TamperKind.CHECKPOINT_SIGNATURE_INVALID, exc.detail, None, size)
            )
            continue
        if checkpoint.size != size:
            detail = f"checkpoint stored as size {size} signs size {checkpoint.size}"
            report.findings.append(Finding(TamperKind.CHECKPOINT_MALFORMED, detail, None, size))
            continue
        if size in trusted and trusted[size].root_hash != checkpoint.root_hash:
            detail = f"two signed checkpoints of size {size} with different roots"
            report.findings.append(Finding(TamperKind.CHECKPOINT_FORK, detail, None, size))
            continue
        trusted[size] = checkpoint
    return [trusted[size] for size in sorted(trusted)]


def with_kept(trusted: list[Checkpoint], kept: Checkpoint, report: Report) -> list[Checkpoint]:
    """The log's trusted checkpoints and the one kept outside it, by size."""
    same = next((c for c in trusted if c.size == kept.size), None)
    if same is None:
        return sorted([*trusted, kept], key=lambda c: c.size)
    if same.root_hash != kept.root_hash:
        detail = (
            f"your checkpoint of size {kept.size} and the log's own signed checkpoint of that"
            " size have different roots: the log key signed two histories"
        )
        report.findings.append(Finding(TamperKind.CHECKPOINT_FORK, detail, None, kept.size))
    return trusted


def _span(recent: bytes | None, hashes: bytes, base: int, start: int, end: int) -> list[bytes]:
    """Leaf hashes of ``[start, end)`` if few enough were kept, else nothing."""
    if start >= base:
        joined = hashes[(start - base) * HASH_SIZE : (end - base) * HASH_SIZE]
    elif recent is None or len(recent) // HASH_SIZE + end - base > _PINPOINT_LIMIT:
        return []
    else:
        joined = recent + hashes[: (end - base) * HASH_SIZE]
    return [joined[i : i + HASH_SIZE] for i in range(0, len(joined), HASH_SIZE)]


class Tree:
    """The tree rebuilt so far, and how it compares with the signed checkpoints.

    With ``proof_from``, it also builds the nodes of the consistency proof from that
    size to the newest of the checkpoints, from the entries' own leaf hashes.
    """

    def __init__(self, trusted: list[Checkpoint], proof_from: int | None = None) -> None:
        self.pending = list(trusted)
        self.compact = CompactRange()
        self.good_size = 0
        self.roots: dict[int, bytes] = {}
        self.proof_from = proof_from
        self.proof_to = trusted[-1].size if trusted else 0
        self.nodes: SubtreeBuilder | None = None
        if proof_from is not None and 0 < proof_from < self.proof_to:
            ranges = consistency_ranges(proof_from, self.proof_to)
            self.nodes = SubtreeBuilder(n for s, e in ranges for n in perfect_cover(s, e))
        # Leaf hashes (concatenated) since the last checkpoint that matched, to pinpoint
        # a rewritten entry.
        self.recent: bytes | None = b""
        self.mismatched: list[tuple[Checkpoint, int, list[bytes]]] = []

    def absorb(self, checked: Checked) -> None:
        """Add one aligned chunk and check the checkpoints inside it."""
        base = self.compact.size
        if checked.base != base:
            raise ValueError(f"chunk of entry {checked.base} given when the tree has {base}")
        hashes = checked.hashes
        end = base + len(hashes) // HASH_SIZE
        frontier = self.compact.frontier
        while self.pending and self.pending[0].size <= end:
            checkpoint = self.pending.pop(0)
            root = fold_frontier(frontier + checked.covers[checkpoint.size])
            if root == checkpoint.root_hash:
                self.good_size = checkpoint.size
                self.roots[checkpoint.size] = root
                self.recent = hashes[(checkpoint.size - base) * HASH_SIZE :]
            else:
                span = _span(self.recent, hashes, base, self.good_size, checkpoint.size)
                self.mismatched.append((checkpoint, self.good_size, span))
        for (level, _), hash_ in zip(perfect_cover(base, end), checked.covers[end], strict=True):
            self.compact.push_subtree(level, hash_)
        if self.recent is not None and self.good_size < base:
            fits = len(self.recent) + len(hashes) <= _PINPOINT_LIMIT * HASH_SIZE
            self.recent = self.recent + hashes if fits else None
        if self.nodes is not None and base < self.proof_to:
            self.nodes.add(hashes)

    def proof(self) -> list[bytes] | None:
        """The consistency proof asked for, if the entries gave every node of it."""
        if self.proof_from is None:
            return None
        if self.nodes is None:
            return []  # from the empty tree, or from the newest checkpoint itself
        built = self.nodes.built
        try:
            return consistency_proof(self.proof_from, self.proof_to, lambda _: built)
        except ProofError:
            return None


def refine(
    problem: Finding, computed: bytes, trusted: list[Checkpoint], read: NodeReader | None
) -> Finding:
    """Tell a changed entry from a changed stored hash, by asking a signed tree head.

    ``computed`` is the leaf hash recomputed from the entry as stored.
    """
    index = problem.index
    if problem.kind is not TamperKind.ENTRY_ALTERED or index is None or read is None:
        return problem
    covering = next((c for c in trusted if c.size > index), None)
    if covering is None:
        return problem
    try:
        proof = inclusion_proof(index, covering.size, read)
        verify_inclusion(computed, index, covering.size, proof, covering.root_hash)
    except ProofError:
        return problem
    detail = f"the stored leaf hash of entry {index} was changed; the entry itself is intact"
    return Finding(TamperKind.LEAF_HASH_ALTERED, detail, index)


def classify_mismatch(
    read: NodeReader | None,
    checkpoint: Checkpoint,
    previous: int,
    span: list[bytes],
    good_size: int,
) -> Finding:
    """Why the entries rebuild another root than ``checkpoint`` signs, the last one that
    matched being of size ``previous``; ``span`` holds the leaf hashes in between if they
    were kept, ``read`` the stored tree if the source has one."""
    size = checkpoint.size
    if good_size > size:
        detail = (
            f"the signed checkpoint of size {size} is inconsistent with the log and with the"
            f" later signed checkpoint of size {good_size}: the log forked"
        )
        return Finding(TamperKind.CHECKPOINT_FORK, detail, None, size)
    if read is not None and span:
        stored_root = _stored_root(read, size)
        if stored_root == checkpoint.root_hash:
            found = _first_unprovable(span, previous, checkpoint, read)
            if found is not None:
                # A leaf and its sibling share their parent: hashes alone cannot tell
                # which of the two was rewritten.
                detail = (
                    f"entry {found} or {found + 1} was rewritten, with its stored hash, after"
                    f" the checkpoint of size {size} signed it"
                )
                return Finding(TamperKind.ENTRY_ALTERED, detail, found)
        elif stored_root and stored_root == _root_of(span, previous, read):
            detail = f"the signed checkpoint of size {size} commits to a different history: a fork"
            return Finding(TamperKind.CHECKPOINT_FORK, detail, None, size)
    detail = f"entries from {previous} to {size - 1} no longer match the checkpoint of size {size}"
    return Finding(TamperKind.HISTORY_REWRITTEN, detail, previous, size)


def _first_unprovable(
    span: list[bytes], previous: int, checkpoint: Checkpoint, read: NodeReader
) -> int | None:
    """The first even index of a pair of entries the signed tree does not hold."""

    def recomputed_leaves(ids: Sequence[NodeId]) -> Mapping[NodeId, bytes]:
        found = dict(read([node for node in ids if node[0] or node[1] < previous]))
        for level, index in ids:
            if level == 0 and previous <= index < previous + len(span):
                found[0, index] = span[index - previous]
        return found

    for offset, leaf_hash in enumerate(span):
        index = previous + offset
        try:
            proof = inclusion_proof(index, checkpoint.size, recomputed_leaves)
            verify_inclusion(leaf_hash, index, checkpoint.size, proof, checkpoint.root_hash)
        except ProofError:
            return index & ~1
    return None


def _stored_frontier(read: NodeReader, size: int) -> list[bytes] | None:
    cover = perfect_cover(0, size)
    found = read(cover)
    if any(node not in found for node in cover):
        return None
    return [found[node] for node in cover]


def _stored_root(read: NodeReader, size: int) -> bytes:
    frontier = _stored_frontier(read, size)
    return b"" if frontier is None else fold_frontier(frontier)


def _root_of(span: list[bytes], previous: int, read: NodeReader) -> bytes:
    frontier = _stored_frontier(read, previous)
    if frontier is None:
        return b"-"
    compact = CompactRange(previous, frontier)
    for leaf_hash in span:
        compact.append(leaf_hash)
    return compact.root()


def missing_checkpoints(report: Report, max_span: float) -> Finding | None:
    """A finding if the entries no checkpoint covers were written over more than
    ``max_span`` seconds, longer than the log ever leaves entries unsigned.

    Only their own times say when they were written, and whoever rewrote them could
    have rewritten those too: this catches a tail rewritten with its times kept, after
    the checkpoints that covered it were deleted. A checkpoint kept outside the log
    catches the rest (``junction audit consistency``).
    """
    times = report.unsigned_times
    if not report.unsigned or times is None:
        return None
    seconds = (times[1] - times[0]) / 1_000_000
    if seconds <= max_span:
        return None
    first, last = report.signed_size, report.entries - 1
    detail = (
        f"entries {first} to {last}, written over {_duration(seconds)}, are covered by no"
        " signed checkpoint, though the log signs within seconds of writing: checkpoints"
        " that covered them were deleted, and they may have been rewritten"
    )
    return Finding(TamperKind.CHECKPOINT_MISSING, detail, first)


def _duration(seconds: float) -> str:
    minutes, second = divmod(int(seconds), 60)
    hours, minute = divmod(minutes, 60)
    days, hour = divmod(hours, 24)
    parts = [(days, "d"), (hour, "h"), (minute, "min"), (second, "s")]
    shown = [f"{value} {unit}" for value, unit in parts if value][:2]
    return " ".join(shown) or "0 s"
