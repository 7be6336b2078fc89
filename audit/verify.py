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

The parts live beside this module: ``audit._chunks`` checks the entries of a chunk,
``audit._checkpoints`` opens the signed checkpoints and holds them against the tree,
``audit._report`` holds what is found; this module reads a ``Source`` through them.
Reading a log from a database is ``audit._dbsource``, from a bundle ``audit.export``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from itertools import chain
from typing import Protocol, runtime_checkable

from audit._checkpoints import (
    UNSIGNED_WINDOW,
    Tree,
    classify_mismatch,
    missing_checkpoints,
    open_checkpoints,
    refine,
    with_kept,
)
from audit._chunks import CHUNK_LEVEL, Checked, Chunk, check_chunk, check_in_order, widen
from audit._report import Finding, Report, TamperKind
from audit.checkpoint import Checkpoint, NoteVerifier
from audit.merkle import NodeReader

__all__ = [
    "CHUNK_LEVEL",
    "UNSIGNED_WINDOW",
    "Checked",
    "CheckingSource",
    "Chunk",
    "Finding",
    "Report",
    "Source",
    "TamperKind",
    "check_chunk",
    "check_in_order",
    "verify_source",
]


class Source(Protocol):
    """Where a verifier reads a log from: a database or an exported bundle."""

    def checkpoints(self) -> Sequence[tuple[int, object]]:
        """Every stored checkpoint as ``(size, note)``, by size; a note is text unless
        the source was altered."""

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


def verify_source(
    source: Source,
    verifier: NoteVerifier,
    origin: str,
    *,
    kept: Checkpoint | None = None,
    progress: Callable[[int], None] | None = None,
    max_unsigned_span: float = UNSIGNED_WINDOW,
) -> Report:
    """Verify a whole log from ``source``, trusting only ``verifier``'s key.

    ``kept`` is a checkpoint kept outside the log (already opened with the key): the
    entries are checked against it as against the log's own checkpoints, and the
    report carries the consistency proof from it to the newest one, built from the
    entries (``Report.proof``). ``max_unsigned_span`` is how many seconds apart, by their
    own times, the entries no signed checkpoint covers may have been written before
    that is a finding (``CHECKPOINT_MISSING``).

    Never raises for a damaged log: every problem becomes a ``Finding`` in the report.
    Raises ``ValueError`` if ``max_unsigned_span`` is negative or not finite.
    """
    if not 0 <= max_unsigned_span < math.inf:
        raise ValueError(f"max_unsigned_span must be 0 or more seconds, not {max_unsigned_span}")
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
        trusted = open_checkpoints(stored, verifier, origin, report)
        if kept is not None:
            trusted = with_kept(trusted, kept, report)
        tree = Tree(trusted, None if kept is None else kept.size)
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
        finding = classify_mismatch(source.read_nodes, checkpoint, previous, span, tree.good_size)
        report.findings.append(finding)
        if finding.kind is not TamperKind.CHECKPOINT_FORK:
            break  # every later checkpoint disagrees for the same reason
    # The times read are those of the entries after the newest stored size: they are
    # the unsigned ones when every checkpoint verified.
    if report.ok and report.signed_size == (sizes[-1] if sizes else 0):
        missing = missing_checkpoints(report, max_unsigned_span)
        if missing is not None:
            report.findings.append(missing)
    else:
        report.unsigned_times = None
    if report.ok:
        report.proof = tree.proof()
    report.seconds = time.perf_counter() - started
    return report


def _scan(
    checked: Iterator[Checked],
    *,
    tree: Tree,
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
            problem = refine(problem, part.altered, trusted, read)
        tree.absorb(part)
        report.entries = tree.compact.size
        report.unsigned_times = widen(report.unsigned_times, part.unsigned)
        if progress is not None:
            progress(tree.compact.size)
        if problem is not None:
            report.findings.append(problem)
            break
    return problem


def _end_problems(tree: Tree, erased_by: dict[int, int]) -> list[Finding]:
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
