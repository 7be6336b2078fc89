"""Values a log's database holds in a type the log never writes.

SQLite keeps whatever type it is given in any column: someone with write access can
store a leaf as text or as a number, a salt as text, a private value as a blob, an
erasure record that names no entry, text that is not UTF-8. The verifier reads rows as
they are stored, so each such value is damage to report like any other: at the entry
it concerns, with the kind of tampering it amounts to, never a crash. PostgreSQL
enforces its column types, so there this finds nothing.

Finding nothing costs a few passes over a chunk at C speed; only a chunk that holds
such a value is searched value by value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from operator import itemgetter
from typing import TYPE_CHECKING

from audit._report import Finding, TamperKind

if TYPE_CHECKING:
    from audit._chunks import Chunk

__all__ = [
    "Undecodable",
    "entry_of",
    "misstored_erasure",
    "misstored_leaf",
    "misstored_note",
    "stored_as",
    "wrong_types",
]


class Undecodable(bytes):
    """Text a database holds that is not UTF-8, as a source reads it instead of failing."""


_STORED_AS = {
    bytes: "a blob",
    str: "text",
    int: "an integer",
    float: "a real number",
    type(None): "NULL",
    Undecodable: "text that is not UTF-8",
}
_OPENING_TYPES = (int, str, bytes, str)
"""The types of a private value's row: ``(index, name, salt, value)``."""


def stored_as(value: object) -> str:
    """What a stored value is, in the database's words: ``"text"``, ``"a blob"``…"""
    return _STORED_AS.get(type(value), type(value).__name__)


def _not_text(value: object) -> str:
    """What a value stored where the log writes text is instead."""
    if isinstance(value, Undecodable):
        return stored_as(value)
    return f"{stored_as(value)}, not text"


def misstored_note(size: int, note: object) -> Finding | None:
    """``CHECKPOINT_MALFORMED`` if the checkpoint of ``size`` is not stored as text."""
    if isinstance(note, str):
        return None
    detail = f"the checkpoint of size {size} is stored as {_not_text(note)}"
    return Finding(TamperKind.CHECKPOINT_MALFORMED, detail, None, size)


def _all_of(values: Iterable[object], kind: type) -> bool:
    return {*map(type, values)} <= {kind}


def wrong_types(chunk: Chunk) -> list[Finding]:
    """Each value of ``chunk`` whose type the log never writes, as a finding, by index.

    A leaf that is not bytes is ``ENTRY_ALTERED``, a leaf hash that is not bytes
    ``LEAF_HASH_ALTERED``, a private value's row of the wrong types
    ``PRIVATE_VALUE_ALTERED``, and an erasure record whose erasure entry is not an
    index ``ERASURE_UNLOGGED``.
    """
    openings = chunk.openings
    if (
        _all_of(chunk.leaves, bytes)
        and _all_of(chunk.hashes, bytes)
        and all(
            _all_of(map(itemgetter(n), openings), kind) for n, kind in enumerate(_OPENING_TYPES)
        )
        and _all_of(chunk.erasures.values(), int)
    ):
        return []
    found = []
    for index, leaf, hash_ in zip(chunk.indexes, chunk.leaves, chunk.hashes, strict=True):
        wrong_leaf = misstored_leaf(index, leaf)
        if wrong_leaf is not None:
            found.append(wrong_leaf)
        if type(hash_) is not bytes:
            detail = f"the leaf hash of entry {index} is stored as {stored_as(hash_)}, not as bytes"
            found.append(Finding(TamperKind.LEAF_HASH_ALTERED, detail, index))
    for row in openings:
        problem = _opening_problem(row, chunk.indexes[0])
        if problem is not None:
            found.append(problem)
    for erased, erasure in chunk.erasures.items():
        wrong_record = misstored_erasure(erased, erasure)
        if wrong_record is not None:
            found.append(wrong_record)
    return sorted(found, key=lambda finding: finding.index or 0)


def misstored_leaf(index: int, leaf: object) -> Finding | None:
    """``ENTRY_ALTERED`` if entry ``index``'s leaf is not stored as bytes."""
    if type(leaf) is bytes:
        return None
    detail = f"entry {index} is stored as {stored_as(leaf)}, not as the bytes that were hashed"
    return Finding(TamperKind.ENTRY_ALTERED, detail, index)


def misstored_erasure(erased: int, erasure: object) -> Finding | None:
    """``ERASURE_UNLOGGED`` if the erasure record of entry ``erased`` names no entry."""
    if type(erasure) is int:
        return None
    detail = (
        f"entry {erased} is marked as erased, but its erasure record names"
        f" {stored_as(erasure)} where the erasure entry's index belongs"
    )
    return Finding(TamperKind.ERASURE_UNLOGGED, detail, erased)


def entry_of(index: object, first: int) -> int:
    """The entry a private value is filed under: its index, or, for a number that is no
    index (only a real number falls among the indexes a chunk reads), the entry below."""
    if type(index) is int:
        return index
    if isinstance(index, float) and math.isfinite(index):
        return int(index)
    return first


def _opening_problem(row: tuple[object, ...], first: int) -> Finding | None:
    index, name, salt, value = row
    entry = entry_of(index, first)
    if type(index) is not int:
        detail = f"a private value is filed under {stored_as(index)} instead of an entry's index"
    elif type(name) is not str:
        detail = f"a private value of entry {entry} has a name stored as {_not_text(name)}"
    elif type(salt) is not bytes:
        detail = (
            f"the salt of private value {name!r} of entry {entry} is stored as"
            f" {stored_as(salt)}, not as bytes"
        )
    elif type(value) is not str:
        detail = f"private value {name!r} of entry {entry} is stored as {_not_text(value)}"
    else:
        return None
    return Finding(TamperKind.PRIVATE_VALUE_ALTERED, detail, entry)
