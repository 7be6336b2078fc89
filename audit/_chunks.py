"""Checking a log's entries, one chunk of consecutive rows at a time.

Each check runs over a whole chunk at C speed, and only a chunk that fails is searched
entry by entry for its first problem: a gap in the indexes, a leaf that does not name
its own index, a leaf that does not hash to its stored hash (RFC 6962 §2.1: SHA-256 of
``0x00`` and the leaf), a private value that does not open its commitment, or an
erasure that is not itself an entry. A chunk is reduced to a small ``Checked``, which
a worker process can send back, for the tree to absorb in index order.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from operator import itemgetter

from audit._misstored import entry_of, wrong_types
from audit._report import Finding, TamperKind
from audit.merkle import perfect_cover, subtree_levels

__all__ = [
    "CHUNK_LEVEL",
    "Checked",
    "Chunk",
    "check_chunk",
    "check_in_order",
    "passes",
    "sound_chunk",
    "unsigned_times",
    "widen",
]

CHUNK_LEVEL = 14
_COMMITMENTS = re.compile(rb'"commitments":\{([^}]*)\}')
_COMMITMENTS_KEY = b'"commitments":{'
# Names as entry.prepare allows them: nothing that could end a JSON string or object.
_PLAIN_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TIME = b'"time":"'


@dataclass(slots=True)
class Chunk:
    """Consecutive rows as stored: indexes, leaves, leaf hashes, and what lies beside them.

    The types are those the log writes; a database may hold others (``_misstored``),
    which ``check_chunk`` reports.
    """

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


_sha256 = hashlib.sha256


def _claimed(leaf: bytes) -> int | None:
    start = leaf.rfind(b',"index":')
    end = leaf.rfind(b',"v":')
    try:
        return int(leaf[start + 9 : end]) if 0 < start < end else None
    except ValueError:
        return None


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
        problems.append(_out_of_place(indexes, at, base + at))
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


def _out_of_place(indexes: list[int], at: int, expected: int) -> Finding:
    """Why entry ``expected`` is not where it belongs, at position ``at``: missing, or
    (only in a bundle, whose lines can be in any order) stored after a later one."""
    found = indexes[at]
    if found > expected and expected in indexes[at + 1 :]:
        detail = f"entry {found} is stored before entry {expected}: entries were moved"
        return Finding(TamperKind.ENTRIES_REORDERED, detail, expected)
    detail = f"entry {expected} is missing: the next stored entry is {found}"
    return Finding(TamperKind.ENTRY_DELETED, detail, expected)


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


def check_chunk(
    chunk: Chunk, base: int, erased_by: Mapping[int, int], sizes: Sequence[int]
) -> Checked:
    """Check one chunk of consecutive rows whose first entry should be ``base``.

    ``base`` is a multiple of the chunk size. ``erased_by`` maps erased entries to their
    erasure entries, for at least the chunk's own rows and the entries erased by one of
    them; ``sizes`` are the checkpoint sizes the tree may ask about, ascending. A pure
    function of its arguments, so it can run in any process.
    """
    wrong = wrong_types(chunk)
    if wrong:
        chunk = _retyped(chunk)
        erased_by = {erased: at for erased, at in erased_by.items() if type(at) is int}
    problem = _entry_problem(chunk, base, erased_by)
    # A leaf hash of another type is left to the checks, which tell a rewritten hash from
    # a rewritten entry by the signed tree.
    misstored = next((f for f in wrong if f.kind is not TamperKind.LEAF_HASH_ALTERED), None)
    if misstored is not None and _first(misstored, problem):
        problem = misstored
    usable = len(chunk.leaves)
    altered = None
    if problem is not None and problem.index is not None:
        usable = max(0, min(usable, problem.index - base))
        if problem.kind is TamperKind.ENTRY_ALTERED and problem is not misstored:
            altered = _sha256(b"\x00" + chunk.leaves[problem.index - base]).digest()
    checked = sound_chunk(chunk.hashes[:usable], base, sizes)
    checked.rows = (chunk.indexes[0], chunk.indexes[-1])
    checked.problem, checked.altered, checked.erasures = problem, altered, chunk.erasures
    checked.unsigned = unsigned_times(chunk.leaves[:usable], base, sizes)
    return checked


def _retyped(chunk: Chunk) -> Chunk:
    """``chunk`` with every value of a wrong type replaced by one of the right type that
    fails each check it meets (an empty leaf, hash, salt, name or value), and without
    the erasure records that name no entry."""
    first = chunk.indexes[0]
    return Chunk(
        chunk.indexes,
        [leaf if type(leaf) is bytes else b"" for leaf in chunk.leaves],
        [hash_ if type(hash_) is bytes else b"" for hash_ in chunk.hashes],
        [
            (
                entry_of(index, first),
                name if type(name) is str else "",
                salt if type(salt) is bytes else b"",
                value if type(value) is str else "",
            )
            for index, name, salt, value in chunk.openings
        ],
        {erased: at for erased, at in chunk.erasures.items() if type(at) is int},
    )


def _first(misstored: Finding, problem: Finding | None) -> bool:
    """Whether a value of the wrong type is the finding to report before ``problem``:
    at the same entry it says more than what the stand-in for it failed, unless the
    entry itself is missing."""
    if problem is None or problem.index is None or misstored.index is None:
        return True
    if misstored.index != problem.index:
        return misstored.index < problem.index
    return problem.kind is not TamperKind.ENTRY_DELETED


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
    Rows with an erased entry do not pass, nor rows holding a value of another type
    than the log writes. ``erased_by`` as for ``check_chunk``.
    """
    try:
        return _passes(rows, base, erased_by)
    except (TypeError, AttributeError, ValueError):
        # A value of another type (text for bytes, a number for text...): no check here
        # accepts one, and ``check_chunk`` names it.
        return False


def _passes(rows: Chunk, base: int, erased_by: Mapping[int, int]) -> bool:
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
            # Only records that name an entry: ``check_chunk`` reports the others.
            erased_by.update((k, at) for k, at in chunk.erasures.items() if type(at) is int)
            yield check_chunk(chunk, base, erased_by, sizes)
            base += len(chunk.leaves)
