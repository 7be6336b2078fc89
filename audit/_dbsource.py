"""Reads a log straight from its database for the verifier, in large ordered chunks.

The full scan is the verifier's hot loop, so it talks to the driver's cursor directly
(a server-side cursor on PostgreSQL) instead of building SQLAlchemy rows: on a million
entries that is most of the difference between reading and hashing.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

from audit.checkpoint import NoteVerifier
from audit.store import Store
from audit.verify import Chunk, Report, verify_source

_ENTRIES = "SELECT idx, leaf, leaf_hash FROM audit_entries ORDER BY idx"
_OPENINGS = (
    "SELECT idx, name, salt, value FROM audit_openings WHERE idx BETWEEN {0} AND {0} ORDER BY idx"
)
_ERASURES = "SELECT idx, erasure_idx FROM audit_erasures WHERE idx BETWEEN {0} AND {0}"


class DatabaseSource:
    """A ``verify.Source`` over a ``Store``: rows as stored, nothing trusted."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.read_nodes = store.read_nodes

    def checkpoints(self) -> list[tuple[int, str]]:
        return self._store.checkpoints()

    def chunks(self, size: int) -> Generator[Chunk]:
        postgres = self._store.is_postgres
        mark = "%s" if postgres else "?"
        openings_sql = _OPENINGS.format(mark)
        erasures_sql = _ERASURES.format(mark)
        with self._store.read(snapshot=True) as conn:
            driver = conn.connection.driver_connection
            assert driver is not None  # noqa: S101 - an open connection has one
            if postgres:
                # Binary results: bytea arrives as raw bytes instead of hex text.
                scan = driver.cursor(name="audit_verify", binary=True)
                lookup = driver.cursor(binary=True)
            else:
                scan, lookup = driver.cursor(), driver.cursor()
            try:
                if postgres:
                    scan.itersize = size
                scan.execute(_ENTRIES)
                while rows := scan.fetchmany(size):
                    yield _chunk(rows, lookup, openings_sql, erasures_sql)
            finally:
                scan.close()
                lookup.close()


def _chunk(rows: Sequence[Any], lookup: Any, openings_sql: str, erasures_sql: str) -> Chunk:
    bounds = (rows[0][0], rows[-1][0])
    lookup.execute(openings_sql, bounds)
    openings = lookup.fetchall()
    lookup.execute(erasures_sql, bounds)
    erasures = dict(lookup.fetchall())
    indexes, leaves, hashes = (list(column) for column in zip(*rows, strict=True))
    return Chunk(indexes, leaves, hashes, openings, erasures)


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
