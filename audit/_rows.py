"""The rows one batch of entries adds to each of the log's tables, and the placeholders
of a multi-row INSERT for them (``store.Store.append_batch`` writes them)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from audit import _tables as t
from audit.entry import PreparedEntry, leaf_bytes
from audit.merkle import CompactRange

__all__ = ["Rows", "placeholders"]


@functools.lru_cache(maxsize=128)
def placeholders(columns: int, rows: int, numbered: bool) -> str:
    """Placeholders for ``rows`` rows of ``columns`` values: ``(?, ?), (?, ?)``, or
    ``($1, $2), ($3, $4)`` when ``numbered``."""
    count = columns * rows
    marks = [f"${n}" for n in range(1, count + 1)] if numbered else ["?"] * count
    return ", ".join(
        "(" + ", ".join(marks[start : start + columns]) + ")" for start in range(0, count, columns)
    )


@dataclass(slots=True)
class Rows:
    """One batch's rows for every table, for entries numbered from ``size``."""

    entries: list[tuple[Any, ...]]
    subjects: list[tuple[str, int]]
    openings: list[tuple[int, str, bytes, str]]
    nodes: list[tuple[int, bytes]]
    erasures: list[dict[str, Any]]

    @classmethod
    def build(cls, batch: Sequence[PreparedEntry], size: int, compact: CompactRange) -> Rows:
        """Rows for ``batch``; extends ``compact`` with their leaf hashes."""
        rows = cls([], [], [], [], [])
        sha256 = hashlib.sha256
        for index, item in enumerate(batch, start=size):
            leaf = leaf_bytes(item.body, index)
            leaf_hash = sha256(b"\x00" + leaf).digest()
            for (level, node_index), hash_ in compact.append(leaf_hash):
                rows.nodes.append((t.node_key(level, node_index), hash_))
            rows.entries.append(
                (
                    index,
                    leaf,
                    leaf_hash,
                    item.time_us,
                    item.kind,
                    item.actor,
                    item.actor_agency,
                    item.counterparty_agency,
                    item.purpose,
                    item.decision,
                    item.query_id,
                )
            )
            rows.subjects.extend((ref, index) for ref in item.subjects)
            rows.openings.extend((index, o.name, o.salt, o.value) for o in item.openings)
            if item.erases is not None:
                rows.erasures.append(
                    {
                        "idx": item.erases,
                        "erased_at_us": item.time_us,
                        "erased_by": item.actor,
                        "reason": item.erasure_reason or "",
                        "erasure_idx": index,
                    }
                )
        return rows
