"""The offline verifier: recompute everything, trust only the log's public key.

It reads every entry in index order and checks, chunk by chunk: that no index is
missing, that each leaf names its own index, that each leaf hashes to its stored hash,
that each private value opens its commitment, and that each erasure is itself an entry.
It rebuilds the tree (leaf hashes in bulk, then whole aligned subtrees level by level,
folded into a compact range) and compares the root at every checkpoint's size with the
root the checkpoint signs. The first problem is classified (see ``TamperKind``) and
reported with the exact index it concerns.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from audit.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from audit.errors import CheckpointError, CheckpointFormatError, CheckpointUnknownSigner, ProofError
from audit.merkle import (
    CompactRange,
    NodeId,
    NodeReader,
    fold_frontier,
    inclusion_proof,
    perfect_cover,
    subtree_levels,
    verify_inclusion,
)

__all__ = [
    "Chunk",
    "Finding",
    "Report",
    "Source",
    "TamperKind",
    "verify_source",
]

CHUNK_LEVEL = 14
_COMMITMENTS = re.compile(rb'"commitments":\{([^}]*)\}')
_PINPOINT_LIMIT = 4096


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

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        """The first finding: the lowest entry index, else the first bad checkpoint."""
        if not self.findings:
            return None
        return min(self.findings, key=lambda f: (f.index is None, f.index or 0, f.tree_size or 0))


@dataclass(slots=True)
class Chunk:
    """Consecutive rows as stored: indexes, leaves, leaf hashes, and what lies beside them."""

    indexes: list[int]
    leaves: list[bytes]
    hashes: list[bytes]
    openings: list[tuple[int, str, bytes, str]]
    """``(index, name, salt, value)`` of every private value, in index order."""
    erasures: dict[int, int]


class Source(Protocol):
    """Where a verifier reads a log from: a database or an exported bundle."""

    def checkpoints(self) -> list[tuple[int, str]]: ...

    def chunks(self, size: int) -> Generator[Chunk]: ...

    @property
    def read_nodes(self) -> NodeReader | None: ...


_sha256 = hashlib.sha256


def _claimed(leaf: bytes) -> int | None:
    start = leaf.rfind(b',"index":')
    end = leaf.rfind(b',"v":')
    try:
        return int(leaf[start + 9 : end]) if 0 < start < end else None
    except ValueError:
        return None


def _open_checkpoints(
    source: Source, verifier: NoteVerifier, origin: str, report: Report
) -> list[Checkpoint]:
    trusted: dict[int, Checkpoint] = {}
    for size, note in source.checkpoints():
        report.checkpoints += 1
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


def _entry_problem(chunk: Chunk, base: int, erased_by: dict[int, int]) -> Finding | None:
    """The first problem among this chunk's rows, in index order.

    Each check runs over the whole chunk at C speed (list equality, ``bytes`` search,
    one regex over the joined leaves); only when one fails does a Python loop look for
    the exact index.
    """
    indexes, leaves = chunk.indexes, chunk.leaves
    problems: list[Finding] = []
    if indexes != list(range(base, base + len(indexes))):
        at = next(p for p, i in enumerate(indexes) if i != base + p)
        detail = f"entry {base + at} is missing: the next stored entry is {indexes[at]}"
        problems.append(Finding(TamperKind.ENTRY_DELETED, detail, base + at))
        leaves = leaves[:at]
    suffixes = [b',"index":%d,"v":1}' % i for i in range(base, base + len(leaves))]
    if not all(map(bytes.endswith, leaves, suffixes)):
        at = next(p for p, leaf in enumerate(leaves) if not leaf.endswith(suffixes[p]))
        problems.append(_misplaced(leaves, at, base))
        leaves = leaves[:at]
    sha256 = _sha256
    computed = [sha256(b"\x00" + leaf).digest() for leaf in leaves]
    if computed != chunk.hashes[: len(computed)]:
        at = next(p for p, h in enumerate(computed) if h != chunk.hashes[p])
        detail = f"entry {base + at} does not hash to its stored leaf hash"
        problems.append(Finding(TamperKind.ENTRY_ALTERED, detail, base + at))
    problems.extend(_private_problems(chunk, leaves, base, erased_by))
    return min(problems, key=lambda f: f.index or 0) if problems else None


def _private_problems(
    chunk: Chunk, leaves: list[bytes], base: int, erased_by: dict[int, int]
) -> list[Finding]:
    problems = []
    limit = base + len(leaves)
    openings = chunk.openings
    sha256 = _sha256
    # "name":"<64 hex>" can only be a commitment: other hex values in a leaf are list
    # items or carry a prefix.
    patterns = [
        b'"%s":"%s"' % (name.encode(), sha256(salt + value.encode()).hexdigest().encode())
        for _, name, salt, value in openings
    ]
    owners = [leaves[i - base] if base <= i < limit else b"" for i, _, _, _ in openings]
    if not all(map(bytes.__contains__, owners, patterns)):
        for (index, name, _, _), owner, pattern in zip(openings, owners, patterns, strict=True):
            if pattern not in owner:
                detail = f"private value {name!r} of entry {index} does not open its commitment"
                problems.append(Finding(TamperKind.PRIVATE_VALUE_ALTERED, detail, index))
                break
    held = len(openings)
    erased_here = [i for i in chunk.erasures if base <= i < limit]
    committed = sum(c.count(b":") for c in _COMMITMENTS.findall(b"\n".join(leaves)))
    committed -= sum(_commitment_count(leaves[i - base]) for i in erased_here)
    if committed != held:
        per_entry = Counter(index for index, _, _, _ in openings)
        for position, leaf in enumerate(leaves):
            index = base + position
            expected = 0 if index in erased_by else _commitment_count(leaf)
            if expected != per_entry[index]:
                detail = f"entry {index} lost private values without an erasure entry"
                problems.append(Finding(TamperKind.PRIVATE_VALUE_MISSING, detail, index))
                break
    for erased, erasure_index in erased_by.items():
        if base <= erasure_index < limit:
            leaf = leaves[erasure_index - base]
            if b'"erases":%d,' % erased not in leaf:
                detail = f"entry {erased} was erased, but entry {erasure_index} does not record it"
                problems.append(Finding(TamperKind.ERASURE_UNLOGGED, detail, erased))
    return problems


def _commitment_count(leaf: bytes) -> int:
    found = _COMMITMENTS.search(leaf)
    return 0 if found is None else found.group(1).count(b":")


def _misplaced(leaves: list[bytes], at: int, base: int) -> Finding:
    index = base + at
    claimed = _claimed(leaves[at])
    if claimed is None:
        return Finding(TamperKind.MALFORMED_LEAF, f"entry {index} is not a Junction leaf", index)
    following = _claimed(leaves[at + 1]) if at + 1 < len(leaves) else None
    if claimed > index:
        if following in (None, claimed + 1):
            detail = f"entries {index} to {claimed - 1} are missing: later entries were renumbered"
            return Finding(TamperKind.ENTRY_DELETED, detail, index)
        detail = f"entry {claimed} is stored at index {index}: entries were swapped or moved"
        return Finding(TamperKind.ENTRIES_REORDERED, detail, index)
    if claimed == index - 1:
        detail = f"two entries claim index {claimed}: one was inserted, later ones renumbered"
        return Finding(TamperKind.ENTRY_INSERTED, detail, claimed)
    detail = f"entry {index} holds a copy of entry {claimed}: an entry was inserted"
    return Finding(TamperKind.ENTRY_INSERTED, detail, index)


def _span(
    recent: list[bytes] | None, hashes: list[bytes], base: int, start: int, end: int
) -> list[bytes]:
    """Leaf hashes of ``[start, end)`` if few enough were kept, else nothing."""
    if start >= base:
        return hashes[start - base : end - base]
    if recent is None or len(recent) + end - base > _PINPOINT_LIMIT:
        return []
    return recent + hashes[: end - base]


class _Tree:
    """The tree rebuilt so far, and how it compares with the signed checkpoints."""

    def __init__(self, trusted: list[Checkpoint]) -> None:
        self.pending = list(trusted)
        self.compact = CompactRange()
        self.good_size = 0
        # Leaf hashes since the last checkpoint that matched, to pinpoint a rewritten entry.
        self.recent: list[bytes] | None = []
        self.mismatched: list[tuple[Checkpoint, int, list[bytes]]] = []

    def absorb(self, hashes: list[bytes]) -> None:
        """Add the leaf hashes of one aligned chunk and check the checkpoints inside it."""
        base = self.compact.size
        levels = subtree_levels(hashes)
        frontier = self.compact.frontier
        while self.pending and self.pending[0].size <= base + len(hashes):
            checkpoint = self.pending.pop(0)
            cover = perfect_cover(base, checkpoint.size)
            root = fold_frontier(frontier + [levels[lv][i - (base >> lv)] for lv, i in cover])
            if root == checkpoint.root_hash:
                self.good_size, self.recent = checkpoint.size, hashes[checkpoint.size - base :]
            else:
                span = _span(self.recent, hashes, base, self.good_size, checkpoint.size)
                self.mismatched.append((checkpoint, self.good_size, span))
        for level, index in perfect_cover(base, base + len(hashes)):
            self.compact.push_subtree(level, levels[level][index - (base >> level)])
        if self.recent is not None and self.good_size < base:
            fits = len(self.recent) + len(hashes) <= _PINPOINT_LIMIT
            self.recent = self.recent + hashes if fits else None


def verify_source(
    source: Source,
    verifier: NoteVerifier,
    origin: str,
    *,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Verify a whole log from ``source``, trusting only ``verifier``'s key.

    Never raises for a damaged log: every problem becomes a ``Finding`` in the report.
    """
    started = time.perf_counter()
    report = Report()
    trusted = _open_checkpoints(source, verifier, origin, report)
    tree = _Tree(trusted)
    erased_by: dict[int, int] = {}
    problem: Finding | None = None
    chunks = source.chunks(1 << CHUNK_LEVEL)
    with contextlib.closing(chunks):
        problem = _scan(
            chunks,
            tree=tree,
            erased_by=erased_by,
            report=report,
            trusted=trusted,
            read=source.read_nodes,
            progress=progress,
        )
    report.signed_size = tree.good_size
    if problem is None:
        report.findings.extend(_end_problems(tree, erased_by))
    for checkpoint, previous, span in tree.mismatched:
        finding = _classify_mismatch(source, checkpoint, previous, span, tree.good_size)
        report.findings.append(finding)
        if finding.kind is not TamperKind.CHECKPOINT_FORK:
            break  # every later checkpoint disagrees for the same reason
    report.seconds = time.perf_counter() - started
    return report


def _scan(
    chunks: Iterator[Chunk],
    *,
    tree: _Tree,
    erased_by: dict[int, int],
    report: Report,
    trusted: list[Checkpoint],
    read: NodeReader | None,
    progress: Callable[[int], None] | None,
) -> Finding | None:
    """Check every chunk's rows and add them to the tree; stop at the first bad entry."""
    problem = None
    for chunk in chunks:
        base = tree.compact.size
        erased_by.update(chunk.erasures)
        report.erased += len(chunk.erasures)
        problem = _entry_problem(chunk, base, erased_by)
        usable = len(chunk.leaves)
        if problem is not None and problem.index is not None:
            usable = max(0, min(usable, problem.index - base))
            problem = _refine(problem, chunk, base, trusted, read)
        tree.absorb(chunk.hashes[:usable])
        report.entries = tree.compact.size
        if progress is not None:
            progress(tree.compact.size)
        if problem is not None:
            report.findings.append(problem)
            break
    return problem


def _end_problems(tree: _Tree, erased_by: dict[int, int]) -> list[Finding]:
    size = tree.compact.size
    found = []
    for erased, erasure_index in sorted(erased_by.items()):
        if erasure_index >= size:
            detail = f"entry {erased} was erased by entry {erasure_index}, which is not in the log"
            found.append(Finding(TamperKind.ERASURE_UNLOGGED, detail, erased))
    beyond = [c for c in tree.pending if c.size > size]
    if beyond:
        detail = f"a checkpoint signs {beyond[0].size} entries but the log holds {size}"
        found.append(Finding(TamperKind.LOG_TRUNCATED, detail, size, beyond[0].size))
    return found


def _refine(
    problem: Finding,
    chunk: Chunk,
    base: int,
    trusted: list[Checkpoint],
    read: NodeReader | None,
) -> Finding:
    """Tell a changed entry from a changed stored hash, by asking a signed tree head."""
    index = problem.index
    if problem.kind is not TamperKind.ENTRY_ALTERED or index is None or read is None:
        return problem
    covering = next((c for c in trusted if c.size > index), None)
    if covering is None:
        return problem
    computed = _sha256(b"\x00" + chunk.leaves[index - base]).digest()
    try:
        proof = inclusion_proof(index, covering.size, read)
        verify_inclusion(computed, index, covering.size, proof, covering.root_hash)
    except ProofError:
        return problem
    detail = f"the stored leaf hash of entry {index} was changed; the entry itself is intact"
    return Finding(TamperKind.LEAF_HASH_ALTERED, detail, index)


def _classify_mismatch(
    source: Source, checkpoint: Checkpoint, previous: int, span: list[bytes], good_size: int
) -> Finding:
    size = checkpoint.size
    if good_size > size:
        detail = (
            f"the signed checkpoint of size {size} is inconsistent with the log and with the"
            f" later signed checkpoint of size {good_size}: the log forked"
        )
        return Finding(TamperKind.CHECKPOINT_FORK, detail, None, size)
    read = source.read_nodes
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
