"""The RFC 6962 / RFC 9162 Merkle tree as pure functions.

Hashing follows RFC 9162 §2.1.1: a leaf hash is SHA-256(0x00 || leaf) and an interior
node SHA-256(0x01 || left || right); the tree over n leaves splits at the largest power
of two below n. Nodes are named by ``(level, index)``: level 0 holds leaf hashes, and
node ``(l, i)`` is the root of the perfect subtree over leaves ``[i * 2**l, (i+1) * 2**l)``.
A log stores only those perfect-subtree nodes; every other hash a proof needs is folded
from O(log n) of them, so proof generation reads O(log n) nodes and never recomputes
the tree.

Proof verification implements the algorithms of RFC 9162 §2.1.3.2 (inclusion) and
§2.1.4.2 (consistency) and accepts exactly what transparency-dev/merkle accepts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

from audit.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "NodeId",
    "NodeReader",
    "SubtreeBuilder",
    "consistency_proof",
    "consistency_ranges",
    "fold_frontier",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "perfect_cover",
    "root_from_leaf_hashes",
    "subtree_levels",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256() (RFC 9162 §2.1.1)."""

NodeId = tuple[int, int]
"""``(level, index)`` of a perfect subtree."""

NodeReader = Callable[[Sequence[NodeId]], Mapping[NodeId, bytes]]
"""Reads stored perfect-subtree hashes; must return every id asked for."""

_sha256 = hashlib.sha256


def leaf_hash(leaf: bytes) -> bytes:
    """MTH({d0}) = SHA-256(0x00 || d0) (RFC 9162 §2.1.1)."""
    return _sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || MTH(left) || MTH(right)) (RFC 9162 §2.1.1)."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n > 1``): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """The right frontier of a growing tree: one perfect-subtree root per set bit of size.

    Appending a leaf hash returns the interior nodes it completes, which is what a log
    must store for later proofs. ``root()`` folds the frontier right to left, giving
    MTH(D[0:size]) (RFC 9162 §2.1.1) in O(log n) hashes.
    """

    __slots__ = ("_nodes", "size")

    def __init__(self, size: int = 0, frontier: Sequence[bytes] = ()) -> None:
        if len(frontier) != size.bit_count():
            raise ValueError(f"a tree of size {size} has {size.bit_count()} frontier nodes")
        self.size = size
        self._nodes = list(frontier)

    @property
    def frontier(self) -> list[bytes]:
        """Roots of the perfect subtrees covering ``[0, size)``, left to right."""
        return list(self._nodes)

    def append(self, hash_: bytes) -> list[tuple[NodeId, bytes]]:
        """Add one leaf hash; return the interior nodes ``((level, index), hash)`` it completes."""
        nodes = self._nodes
        index = self.size
        self.size += 1
        completed: list[tuple[NodeId, bytes]] = []
        level = 0
        while index & 1:
            hash_ = _sha256(b"\x01" + nodes.pop() + hash_).digest()
            level += 1
            index >>= 1
            completed.append(((level, index), hash_))
        nodes.append(hash_)
        return completed

    def push_subtree(self, level: int, hash_: bytes) -> None:
        """Add a whole perfect subtree of ``2**level`` leaves; ``size`` must be aligned."""
        if self.size % (1 << level):
            raise ValueError(f"size {self.size} is not aligned to a subtree of level {level}")
        nodes = self._nodes
        index = self.size >> level
        self.size += 1 << level
        while index & 1:
            hash_ = _sha256(b"\x01" + nodes.pop() + hash_).digest()
            index >>= 1
        nodes.append(hash_)

    def root(self) -> bytes:
        """MTH of the leaves added so far; the empty tree's root is SHA-256()."""
        return fold_frontier(self._nodes)


def fold_frontier(frontier: Sequence[bytes]) -> bytes:
    """Root of a tree from its perfect-subtree roots, left to right (RFC 9162 §2.1.1)."""
    if not frontier:
        return EMPTY_ROOT
    result = frontier[-1]
    for hash_ in reversed(frontier[:-1]):
        result = _sha256(b"\x01" + hash_ + result).digest()
    return result


def root_from_leaf_hashes(hashes: Iterable[bytes]) -> bytes:
    """MTH of a sequence of leaf hashes (RFC 9162 §2.1.1), in O(log n) memory."""
    compact = CompactRange()
    for hash_ in hashes:
        compact.append(hash_)
    return compact.root()


def subtree_levels(hashes: list[bytes]) -> list[list[bytes]]:
    """Every level of the perfect subtrees over ``hashes``, leaves first.

    ``levels[l][i]`` is node ``(l, i)`` relative to the first leaf; a level's odd last
    node has no parent yet. One list comprehension per level keeps this close to the
    raw speed of SHA-256 in Python.
    """
    levels = [hashes]
    while len(levels[-1]) > 1:
        current = levels[-1]
        pairs = zip(current[::2], current[1::2], strict=False)
        levels.append([_sha256(b"\x01" + left + right).digest() for left, right in pairs])
    return levels


class SubtreeBuilder:
    """Chosen perfect subtrees, built from leaf hashes that arrive in index order.

    The leaf hashes come in consecutive slices of any length, from leaf 0 on (``add``);
    a wanted node ``(level, index)`` is in ``built`` once every leaf under it has come.
    Each slice is folded as whole aligned subtrees, one list comprehension per level
    (``subtree_levels``): about one interior hash per leaf under a wanted node.
    """

    __slots__ = ("_partial", "_wanted", "built", "size")

    def __init__(self, wanted: Iterable[NodeId]) -> None:
        self._wanted = sorted(set(wanted), key=lambda node: node[1] << node[0])
        self._partial: dict[NodeId, CompactRange] = {}
        self.built: dict[NodeId, bytes] = {}
        self.size = 0

    def add(self, joined: bytes) -> None:
        """Add the next leaf hashes, concatenated."""
        start = self.size
        end = self.size = start + len(joined) // HASH_SIZE
        for node in self._wanted:
            level, index = node
            first, last = index << level, (index + 1) << level
            if last <= start or first >= end:
                continue
            # Relative to the node's first leaf, alignment is the same as absolute.
            part = self._partial.setdefault(node, CompactRange())
            for block_level, block in _aligned_blocks(
                max(first, start) - first, min(last, end) - first
            ):
                offset = (first + (block << block_level) - start) * HASH_SIZE
                piece = joined[offset : offset + (HASH_SIZE << block_level)]
                hashes = [piece[i : i + HASH_SIZE] for i in range(0, len(piece), HASH_SIZE)]
                part.push_subtree(block_level, subtree_levels(hashes)[-1][0])
            if part.size == last - first:
                self.built[node] = part.root()
                del self._partial[node]


def _aligned_blocks(start: int, end: int) -> list[NodeId]:
    """The fewest perfect subtrees covering ``[start, end)``, left to right."""
    blocks: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        blocks.append((level, start >> level))
        start += 1 << level
    return blocks


def perfect_cover(start: int, end: int) -> list[NodeId]:
    """The perfect subtrees covering ``[start, end)``, left to right.

    ``start`` must be a multiple of the largest power of two not above ``end - start``,
    which holds for every range RFC 9162's recursive definitions produce.
    """
    nodes: list[NodeId] = []
    width = end - start
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            if start % (1 << level):
                raise ValueError(f"[{start}, {end}) is not a right-border range")
            nodes.append((level, start >> level))
            start += 1 << level
    return nodes


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The subtrees whose hashes form PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), leaf first."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not in a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """The subtrees whose hashes form PROOF(old, D[0:new]) (RFC 9162 §2.1.4.1)."""
    if not 0 < old <= new:
        raise ProofError(f"no consistency proof from size {old} to size {new}")
    ranges: list[tuple[int, int]] = []
    # SUBPROOF(m, D[start:end], b), unrolled; b says whether D[start:start+m] is a
    # subtree whose hash the verifier already knows (the old root).
    start, end, m, known = 0, new, old, True
    while True:
        n = end - start
        if m == n:
            if not known:
                ranges.append((start, end))
            break
        k = _split(n)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, known = start + k, m - k, False
    ranges.reverse()
    return ranges


def _hashes_for(ranges: Sequence[tuple[int, int]], read: NodeReader) -> list[bytes]:
    covers = [perfect_cover(start, end) for start, end in ranges]
    wanted = sorted({node for cover in covers for node in cover})
    found = read(wanted)
    missing = [node for node in wanted if node not in found]
    if missing:
        raise ProofError(f"the store lacks tree nodes {missing[:3]}: the log is incomplete")
    return [fold_frontier([found[node] for node in cover]) for cover in covers]


def inclusion_proof(index: int, size: int, read: NodeReader) -> list[bytes]:
    """PATH(index, D[0:size]) from stored nodes: O(log size) reads (RFC 9162 §2.1.3.1)."""
    return _hashes_for(inclusion_ranges(index, size), read)


def consistency_proof(old: int, new: int, read: NodeReader) -> list[bytes]:
    """PROOF(old, D[0:new]) from stored nodes: O(log new) reads (RFC 9162 §2.1.4.1)."""
    return _hashes_for(consistency_ranges(old, new), read)


def _check_lengths(*hashes: bytes) -> None:
    for hash_ in hashes:
        if len(hash_) != HASH_SIZE:
            raise ProofError(f"a hash is {len(hash_)} bytes, not {HASH_SIZE}")


def verify_inclusion(
    leaf_hash_: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check an inclusion proof (RFC 9162 §2.1.3.2). Raises ``ProofError`` if it fails."""
    _check_lengths(leaf_hash_, root, *proof)
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not in a tree of size {size}")
    fn, sn, result = index, size - 1, leaf_hash_
    for sibling in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the inclusion proof is shorter than the tree is deep")
    if result != root:
        raise ProofError(f"entry {index} is not in the tree of size {size} with this root")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check a consistency proof (RFC 9162 §2.1.4.2). Raises ``ProofError`` if it fails."""
    _check_lengths(*proof)
    if old_size < 1 or old_size > new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError("trees of equal size need an empty consistency proof")
        if old_root != new_root:
            raise ProofError(f"two different roots for the same tree size {old_size}")
        return
    _check_lengths(old_root, new_root)
    if not proof:
        raise ProofError("the consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the consistency proof is shorter than the tree is deep")
    if fr != old_root:
        raise ProofError(f"the proof does not lead to the old root of size {old_size}")
    if sr != new_root:
        raise ProofError(f"the tree of size {new_size} does not extend the one of size {old_size}")
