"""Reads a log straight from its database for the verifier, in large ordered chunks."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

import sqlalchemy as sa

from audit import _tables as t
from audit.checkpoint import NoteVerifier
from audit.store import Store
from audit.verify import Chunk, Report, verify_source


class DatabaseSource:
    """A ``verify.Source`` over a ``Store``: rows as stored, nothing trusted."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.read_nodes = store.read_nodes

    def checkpoints(self) -> list[tuple[int, str]]:
        return self._store.checkpoints()

    def chunks(self, size: int) -> Generator[Chunk]:
        e = t.entries.c
        statement = sa.select(e.idx, e.leaf, e.leaf_hash).order_by(e.idx)
        # Closing the result when the caller stops early releases PostgreSQL's
        # server-side cursor at once rather than at garbage collection.
        with (
            self._store.read(snapshot=True) as conn,
            conn.execution_options(yield_per=size).execute(statement) as result,
        ):
            for rows in result.partitions(size):
                yield self._chunk(conn, rows)

    @staticmethod
    def _chunk(conn: sa.Connection, rows: Sequence[Any]) -> Chunk:
        o, x = t.openings.c, t.erasures.c
        first, last = rows[0][0], rows[-1][0]
        openings: dict[int, list[tuple[str, bytes, str]]] = {}
        for idx, name, salt, value in conn.execute(
            sa.select(o.idx, o.name, o.salt, o.value).where(o.idx.between(first, last))
        ):
            openings.setdefault(int(idx), []).append((name, bytes(salt), value))
        erasures = {
            int(idx): int(by)
            for idx, by in conn.execute(
                sa.select(x.idx, x.erasure_idx).where(x.idx.between(first, last))
            )
        }
        return Chunk(
            indexes=[int(row[0]) for row in rows],
            leaves=[bytes(row[1]) for row in rows],
            hashes=[bytes(row[2]) for row in rows],
            openings=openings,
            erasures=erasures,
        )


def verify_store(
    store: Store,
    verifier: NoteVerifier,
    *,
    origin: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Verify the log in ``store``, trusting only ``verifier``'s key (see ``verify``)."""
    return verify_source(
        DatabaseSource(store), verifier, origin or verifier.name, progress=progress
    )
