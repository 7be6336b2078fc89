"""The offline verifier: recompute everything, trust only the log's public key.

It reads every entry in index order and checks, chunk by chunk: that no index is
missing, that each leaf names its own index, that each leaf hashes to its stored hash,
that each private value opens its commitment, and that each erasure is itself an entry.
It rebuilds the tree (leaf hashes in bulk, then whole aligned subtrees level by level,
folded into a compact range) and compares the root at every checkpoint's size with the
root the checkpoint signs. The first problem is classified (see ``TamperKind``) and
reported with the exact index it concerns.

Each chunk is checked on its own by ``check_chunk`` and reduced to a small ``Checked``:
its first problem, its stored leaf hashes, and the roots of the few perfect subtrees the
tree needs from it. The tree then absorbs the chunks in index order. So a source may
check its chunks anywhere, in several processes at once (``audit._dbsource`` does, for a
large log in a database), and the verdict is the same as checking them one by one. A
source may also check a chunk in parts (``passes``) and only a chunk that fails whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import chain, groupby
from operator import itemgetter
from typing import Protocol, runtime_checkable

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
    subtree_levels,
    verify_inclusion,
)

__all__ = [
    "Checked",
    "CheckingSource",
    "Chunk",
    "Finding",
    "Report",
    "Source",
    "TamperKind",
    "check_chunk",
    "check_in_order",
    "passes",
    "sound_chunk",
    "unsigned_times",
    "verify_source",
    "widen",
]

CHUNK_LEVEL = 14
_COMMITMENTS = re.compile(rb'"commitments":\{([^}]*)\}')
_COMMITMENTS_KEY = b'"commitments":{'
# Names as entry.prepare allows them: nothing that could end a JSON string or object.
_PLAIN_NAME = re.compile(r"[a-z][a-z0-9_]*")
_PINPOINT_LIMIT = 4096
_TIME = b'"time":"'
UNSIGNED_WINDOW = 300.0
"""Seconds of entries (by their own times) that may wait for a checkpoint. The log signs
one within 0.2 s of writing an entry by default and a connector's within at most 60 s,
so a longer run of entries that no checkpoint covers was not left so by the log."""


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


@dataclass(slots=True)
class Chunk:
    """Consecutive rows as stored: indexes, leaves, leaf hashes, and what lies beside them."""

    indexes: list[int]
    leaves: list[bytes]
    hashes: list[bytes]
    openings: list[tuple[int, str, bytes, str]]
    """``(index, name, salt, value)`` of every private value, in index order."""
    erasures: dict[int, int]


@dataclass(slots=True)
class Checked:
    """One chunk, checked: all the tree and the report still need from it.

    Small enough to send back from a worker process: instead of the chunk's subtrees,
    ``covers`` holds, for each ``end`` the tree asks about (the end of the chunk and
    every checkpoint size inside it), the roots of the perfect subtrees covering
    ``[base, end)``.
    """

    base: int
    rows: tuple[int, int]
    """The first and the last index among the chunk's stored rows."""
    problem: Finding | None
    altered: bytes | None
    """The leaf hash recomputed for the entry ``problem`` names, if it is ENTRY_ALTERED."""
    hashes: bytes
    """The stored leaf hashes of the entries before ``problem``, concatenated."""
    covers: dict[int, list[bytes]]
    erasures: dict[int, int]
    """The erasure records of the chunk's rows: erased index to erasure entry."""
    unsigned: tuple[int, int] | None = None
    """The earliest and latest time of its entries after the newest checkpoint size."""


class Source(Protocol):
    """Where a verifier reads a log from: a database or an exported bundle."""

    def checkpoints(self) -> list[tuple[int, str]]: ...

    def chunks(self, size: int) -> Generator[Chunk]: ...

    @property
    def read_nodes(self) -> NodeReader | None: ...


@runtime_checkable
class CheckingSource(Source, Protocol):
    """A source that checks its own chunks, ``2**CHUNK_LEVEL`` entries each, in order.

    ``sizes`` are the stored checkpoint sizes, ascending. The results must be what
    ``check_in_order(self.chunks(2**CHUNK_LEVEL), sizes)`` gives, up to the first
    problem.
    """

    def checked(self, sizes: list[int]) -> Generator[Checked]: ...


_sha256 = hashlib.sha256


def _claimed(leaf: bytes) -> int | None:
    start = leaf.rfind(b',"index":')
    end = leaf.rfind(b',"v":')
    try:
        return int(leaf[start + 9 : end]) if 0 < start < end else None
    except ValueError:
        return None


def _open_checkpoints(
    stored: list[tuple[int, str]], verifier: NoteVerifier, origin: str, report: Report
) -> list[Checkpoint]:
    trusted: dict[int, Checkpoint] = {}
    for size, note in stored:
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


def _entry_problem(chunk: Chunk, base: int, erased_by: Mapping[int, int]) -> Finding | None:
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
    chunk: Chunk, leaves: list[bytes], base: int, erased_by: Mapping[int, int]
) -> list[Finding]:
    if _openings_match(chunk, leaves, base, erased_by):
        problems = []
    else:
        problems = _opening_problems(chunk, leaves, base, erased_by)
    return problems + _unlogged_erasures(leaves, base, erased_by)


def _unlogged_erasures(
    leaves: list[bytes], base: int, erased_by: Mapping[int, int]
) -> list[Finding]:
    """Erasure records that no erasure entry backs: those of an entry among these
    leaves that name an entry before it (an erasure entry always comes after what it
    erased, so the record is forged, wherever the entry it names lies), and those
    naming an entry among these leaves that does not record the erasure."""
    problems = []
    limit = base + len(leaves)
    for erased, erasure_index in erased_by.items():
        if base <= erased < limit and erasure_index <= erased:
            detail = (
                f"entry {erased} was erased, but the entry its erasure record names"
                f" ({erasure_index}) comes before it"
            )
            problems.append(Finding(TamperKind.ERASURE_UNLOGGED, detail, erased))
        elif base <= erasure_index < limit:
            leaf = leaves[erasure_index - base]
            if b'"erases":%d,' % erased not in leaf:
                detail = f"entry {erased} was erased, but entry {erasure_index} does not record it"
                problems.append(Finding(TamperKind.ERASURE_UNLOGGED, detail, erased))
    return problems


def _openings_match(
    chunk: Chunk, leaves: list[bytes], base: int, erased_by: Mapping[int, int]
) -> bool:
    """Whether the chunk's private values and commitments agree: the fast path.

    For a chunk without erased entries: the private values of each entry, hashed and
    in name order, must rebuild the commitments object that its leaf holds first, and
    no other leaf may hold one. When this holds, the exact checks
    (``_opening_problems``) find nothing: each value's ``"name":"hex"`` is in its leaf,
    and each leaf's first commitments object (all they count per leaf) has as many
    values as are stored. Otherwise they run, to name the first problem. One short
    search per entry, where they take a regex over the chunk and a full search per
    value.
    """
    limit = base + len(leaves)
    openings = chunk.openings
    if any(base <= index < limit for index in erased_by):
        return False
    if not all(map(_PLAIN_NAME.fullmatch, {name for _, name, _, _ in openings})):
        return False
    indexes = [index for index, _, _, _ in openings]
    single = len(set(indexes)) == len(indexes)
    form = b'"commitments":{"%s":"%s"}' if single else b'"%s":"%s"'
    sha256 = _sha256
    pieces = [
        form % (name.encode(), sha256(salt + value.encode()).hexdigest().encode())
        for _, name, salt, value in openings
    ]
    if single:  # one private value per entry, the usual case: each piece is an object
        owned, objects = indexes, pieces
    else:
        owned, objects = [], []
        for index, group in groupby(zip(indexes, pieces, strict=True), itemgetter(0)):
            owned.append(index)
            objects.append(b'"commitments":{%s}' % b",".join(piece for _, piece in group))
        if len(set(owned)) != len(owned):
            return False  # an entry's values are not next to each other
    if owned and (min(owned) < base or max(owned) >= limit):
        return False
    owners = [leaves[index - base] for index in owned]
    # Where each owner's first commitments object starts (-1 if it has none).
    starts = list(map(bytes.find, owners, [_COMMITMENTS_KEY] * len(owners)))
    if not all(map(bytes.startswith, owners, objects, starts)):
        return False
    if len(owned) == len(leaves):  # distinct and in range: every entry has values
        return True
    have = set(owned)
    others = [leaf for index, leaf in enumerate(leaves, start=base) if index not in have]
    return _COMMITMENTS_KEY not in b"\n".join(others)


def _opening_problems(
    chunk: Chunk, leaves: list[bytes], base: int, erased_by: Mapping[int, int]
) -> list[Finding]:
    """The exact checks: each private value against its own leaf, and the counts."""
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


def _span(recent: bytes | None, hashes: bytes, base: int, start: int, end: int) -> list[bytes]:
    """Leaf hashes of ``[start, end)`` if few enough were kept, else nothing."""
    if start >= base:
        joined = hashes[(start - base) * HASH_SIZE : (end - base) * HASH_SIZE]
    elif recent is None or len(recent) // HASH_SIZE + end - base > _PINPOINT_LIMIT:
        return []
    else:
        joined = recent + hashes[: (end - base) * HASH_SIZE]
    return [joined[i : i + HASH_SIZE] for i in range(0, len(joined), HASH_SIZE)]


class _Tree:
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


def check_chunk(
    chunk: Chunk, base: int, erased_by: Mapping[int, int], sizes: Sequence[int]
) -> Checked:
    """Check one chunk of consecutive rows whose first entry should be ``base``.

    ``base`` is a multiple of the chunk size. ``erased_by`` maps erased entries to their
    erasure entries, for at least the chunk's own rows and the entries erased by one of
    them; ``sizes`` are the checkpoint sizes the tree may ask about, ascending. A pure
    function of its arguments, so it can run in any process.
    """
    problem = _entry_problem(chunk, base, erased_by)
    usable = len(chunk.leaves)
    altered = None
    if problem is not None and problem.index is not None:
        usable = max(0, min(usable, problem.index - base))
        if problem.kind is TamperKind.ENTRY_ALTERED:
            altered = _sha256(b"\x00" + chunk.leaves[problem.index - base]).digest()
    checked = sound_chunk(chunk.hashes[:usable], base, sizes)
    checked.rows = (chunk.indexes[0], chunk.indexes[-1])
    checked.problem, checked.altered, checked.erasures = problem, altered, chunk.erasures
    checked.unsigned = unsigned_times(chunk.leaves[:usable], base, sizes)
    return checked


def unsigned_times(
    leaves: Sequence[bytes], base: int, sizes: Sequence[int], times: tuple[int, int] | None = None
) -> tuple[int, int] | None:
    """``times`` widened by the times of these leaves (from entry ``base`` on) that come
    after the newest of ``sizes``: only those can lack a checkpoint. Nothing is parsed
    for leaves that come before it, so a chunk costs nothing here but the last one."""
    since = sizes[-1] if sizes else 0
    found = []
    for leaf in leaves[max(0, since - base) :]:
        # The entry's own time is the last "time" key in the leaf (keys are sorted, and
        # a private value's commitment named "time" comes earlier, in "commitments").
        start = leaf.rfind(_TIME)
        if start < 0:
            continue
        start += len(_TIME)
        with contextlib.suppress(ValueError):  # not a time: the leaf says when it was not
            moment = datetime.fromisoformat(leaf[start : leaf.find(b'"', start)].decode())
            if moment.tzinfo is not None:
                found.append(int(moment.timestamp() * 1_000_000))
    return widen(times, (min(found), max(found)) if found else None)


def widen(times: tuple[int, int] | None, more: tuple[int, int] | None) -> tuple[int, int] | None:
    """The earliest and latest of two ``(earliest, latest)`` pairs, either may be None."""
    if times is None or more is None:
        return times or more
    return min(times[0], more[0]), max(times[1], more[1])


def sound_chunk(hashes: list[bytes], base: int, sizes: Sequence[int]) -> Checked:
    """The result for the chunk of these leaf hashes from ``base`` on, found sound."""
    end = base + len(hashes)
    levels = subtree_levels(hashes)
    ends = [*sizes[bisect_left(sizes, base) : bisect_right(sizes, end)], end]
    covers = {
        size: [levels[level][i - (base >> level)] for level, i in perfect_cover(base, size)]
        for size in ends
    }
    return Checked(base, (base, end - 1), None, None, b"".join(hashes), covers, {})


def passes(rows: Chunk, base: int, erased_by: Mapping[int, int]) -> bool:
    """Whether these consecutive rows, from entry ``base`` on, certainly hold no problem.

    Every check here concerns one entry at a time (private values as ``_openings_match``
    checks them), so a chunk holds no problem if each of its parts passes. A reader can
    thus check a chunk in parts small enough to stay in a core's cache, and read it
    whole for ``check_chunk`` (which names the first problem) only if a part fails.
    Rows with an erased entry do not pass. ``erased_by`` as for ``check_chunk``.
    """
    leaves = rows.leaves
    if rows.erasures or rows.indexes != list(range(base, base + len(leaves))):
        return False
    suffixes = [b',"index":%d,"v":1}' % i for i in range(base, base + len(leaves))]
    if not all(map(bytes.endswith, leaves, suffixes)):
        return False
    sha256 = _sha256
    if [sha256(b"\x00" + leaf).digest() for leaf in leaves] != rows.hashes:
        return False
    if not _openings_match(rows, leaves, base, erased_by):
        return False
    return not _unlogged_erasures(leaves, base, erased_by)


def check_in_order(chunks: Generator[Chunk], sizes: Sequence[int]) -> Generator[Checked]:
    """Check a log's chunks one after another, from entry 0 on."""
    erased_by: dict[int, int] = {}
    base = 0
    with contextlib.closing(chunks):
        for chunk in chunks:
            erased_by.update(chunk.erasures)
            yield check_chunk(chunk, base, erased_by, sizes)
            base += len(chunk.leaves)


def verify_source(
    source: Source,
    verifier: NoteVerifier,
    origin: str,
    *,
    kept: Checkpoint | None = None,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Verify a whole log from ``source``, trusting only ``verifier``'s key.

    ``kept`` is a checkpoint kept outside the log (already opened with the key): the
    entries are checked against it as against the log's own checkpoints, and the
    report carries the consistency proof from it to the newest one, built from the
    entries (``Report.proof``). Never raises for a damaged log: every problem becomes a
    ``Finding`` in the report.
    """
    started = time.perf_counter()
    report = Report()
    # Read before the entries, so that every checkpoint signs entries the scan sees.
    stored = source.checkpoints()
    # Subtree roots for every stored size, signed or not: the chunks are checked while
    # the signatures are (about 0.15 ms each, so 0.15 s for a million entries).
    sizes = sorted({size for size, _ in stored} | ({kept.size} if kept else set()))
    if isinstance(source, CheckingSource):
        checked = source.checked(sizes)
    else:
        checked = check_in_order(source.chunks(1 << CHUNK_LEVEL), sizes)
    erased_by: dict[int, int] = {}
    problem: Finding | None = None
    with contextlib.closing(checked):
        # The first chunk starts the scan (and a database source's workers) first.
        first = next(checked, None)
        trusted = _open_checkpoints(stored, verifier, origin, report)
        if kept is not None:
            trusted = _with_kept(trusted, kept, report)
        tree = _Tree(trusted, None if kept is None else kept.size)
        problem = _scan(
            chain([] if first is None else [first], checked),
            tree=tree,
            erased_by=erased_by,
            report=report,
            trusted=trusted,
            read=source.read_nodes,
            progress=progress,
        )
    report.signed_size = tree.good_size
    report.roots = tree.roots
    if problem is None:
        report.findings.extend(_end_problems(tree, erased_by))
    for checkpoint, previous, span in tree.mismatched:
        finding = _classify_mismatch(source, checkpoint, previous, span, tree.good_size)
        report.findings.append(finding)
        if finding.kind is not TamperKind.CHECKPOINT_FORK:
            break  # every later checkpoint disagrees for the same reason
    # The times read are those of the entries after the newest stored size: they are
    # the unsigned ones when every checkpoint verified.
    if report.ok and report.signed_size == (sizes[-1] if sizes else 0):
        missing = _missing_checkpoints(report)
        if missing is not None:
            report.findings.append(missing)
    else:
        report.unsigned_times = None
    if report.ok:
        report.proof = tree.proof()
    report.seconds = time.perf_counter() - started
    return report


def _missing_checkpoints(report: Report) -> Finding | None:
    """A finding if the entries no checkpoint covers were written over longer than the
    log ever leaves entries unsigned (``UNSIGNED_WINDOW``).

    Only their own times say when they were written, and whoever rewrote them could
    have rewritten those too: this catches a tail rewritten with its times kept, after
    the checkpoints that covered it were deleted. A checkpoint kept outside the log
    catches the rest (``junction audit consistency``).
    """
    times = report.unsigned_times
    if not report.unsigned or times is None:
        return None
    seconds = (times[1] - times[0]) / 1_000_000
    if seconds <= UNSIGNED_WINDOW:
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


def _with_kept(trusted: list[Checkpoint], kept: Checkpoint, report: Report) -> list[Checkpoint]:
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


def _scan(
    checked: Iterator[Checked],
    *,
    tree: _Tree,
    erased_by: dict[int, int],
    report: Report,
    trusted: list[Checkpoint],
    read: NodeReader | None,
    progress: Callable[[int], None] | None,
) -> Finding | None:
    """Add every checked chunk to the tree; stop at the first bad entry."""
    problem = None
    for part in checked:
        erased_by.update(part.erasures)
        report.erased += len(part.erasures)
        problem = part.problem
        if problem is not None and part.altered is not None:
            problem = _refine(problem, part.altered, trusted, read)
        tree.absorb(part)
        report.entries = tree.compact.size
        report.unsigned_times = widen(report.unsigned_times, part.unsigned)
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
