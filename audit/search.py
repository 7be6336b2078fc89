"""Reading entries back: one by index, or many by the filters an IG officer uses.

Every result is built from the leaf itself, never from the search columns, so what a
reader sees is exactly what the tree commits to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from audit import _tables as t
from audit.entry import Erasure, StoredEntry, parse_leaf
from audit.errors import EntryError, EntryNotFound
from audit.store import Store

__all__ = ["Page", "SearchQuery", "get_entry", "get_leaf", "search_entries"]

MAX_LIMIT = 500


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """Filters, all optional and combined with AND; ``before`` is the paging cursor."""

    actor: str | None = None
    actor_agency: str | None = None
    counterparty_agency: str | None = None
    subject: str | None = None
    purpose: str | None = None
    kind: str | None = None
    decision: str | None = None
    query_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class Page:
    """Entries newest first; pass ``next_before`` as ``before`` to get the next page."""

    entries: list[StoredEntry]
    next_before: int | None


def _us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise EntryError("search times must carry a time zone")
    return int(moment.timestamp() * 1_000_000)


def _load(conn: Connection, rows: Sequence[Any]) -> list[StoredEntry]:
    indexes = [int(row.idx) for row in rows]
    private: dict[int, dict[str, str]] = {i: {} for i in indexes}
    for idx, name, value in conn.execute(
        sa.select(t.openings.c.idx, t.openings.c.name, t.openings.c.value).where(
            t.openings.c.idx.in_(indexes)
        )
    ):
        private[int(idx)][name] = value
    erased = {
        int(row.idx): Erasure(
            erased_at=datetime.fromtimestamp(row.erased_at_us / 1_000_000, UTC),
            erased_by=row.erased_by,
            reason=row.reason,
            erasure_index=int(row.erasure_idx),
        )
        for row in conn.execute(sa.select(t.erasures).where(t.erasures.c.idx.in_(indexes)))
    }
    result = []
    for row in rows:
        index = int(row.idx)
        _, fields = parse_leaf(bytes(row.leaf))
        result.append(
            StoredEntry(index, fields, private[index], bytes(row.leaf_hash), erased.get(index))
        )
    return result


def get_entry(store: Store, index: int) -> StoredEntry:
    """Entry ``index`` with its private values or erasure record. Raises ``EntryNotFound``."""
    with store.read() as conn:
        rows = conn.execute(
            sa.select(t.entries.c.idx, t.entries.c.leaf, t.entries.c.leaf_hash).where(
                t.entries.c.idx == index
            )
        ).all()
        if not rows:
            raise EntryNotFound(f"the log has no entry {index}")
        return _load(conn, rows)[0]


def get_leaf(store: Store, index: int) -> bytes:
    """The leaf of entry ``index`` exactly as stored. Raises ``EntryNotFound``."""
    with store.read() as conn:
        leaf = conn.scalar(sa.select(t.entries.c.leaf).where(t.entries.c.idx == index))
    if leaf is None:
        raise EntryNotFound(f"the log has no entry {index}")
    return bytes(leaf)


def search_entries(store: Store, query: SearchQuery) -> Page:
    """Entries matching ``query``, newest first. Raises ``EntryError`` for a bad limit."""
    if not 1 <= query.limit <= MAX_LIMIT:
        raise EntryError(f"limit must be between 1 and {MAX_LIMIT}")
    e = t.entries.c
    statement = sa.select(e.idx, e.leaf, e.leaf_hash)
    for column, value in (
        (e.actor, query.actor),
        (e.actor_agency, query.actor_agency),
        (e.counterparty_agency, query.counterparty_agency),
        (e.purpose, query.purpose),
        (e.kind, query.kind),
        (e.decision, query.decision),
        (e.query_id, query.query_id),
    ):
        if value is not None:
            statement = statement.where(column == value)
    if query.subject is not None:
        statement = statement.where(
            e.idx.in_(sa.select(t.subjects.c.idx).where(t.subjects.c.ref == query.subject))
        )
    if query.since is not None:
        statement = statement.where(e.time_us >= _us(query.since))
    if query.until is not None:
        statement = statement.where(e.time_us < _us(query.until))
    if query.before is not None:
        statement = statement.where(e.idx < query.before)
    statement = statement.order_by(e.idx.desc()).limit(query.limit + 1)
    with store.read() as conn:
        rows = conn.execute(statement).all()
        more = len(rows) > query.limit
        entries = _load(conn, rows[: query.limit])
    return Page(entries, entries[-1].index if more else None)
