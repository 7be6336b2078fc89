"""Reads a log straight from its database for the verifier, in large ordered chunks.

The full scan is the verifier's hot loop, so it talks to the driver's cursor directly
(a server-side cursor on PostgreSQL) instead of building SQLAlchemy rows: on a million
entries that is most of the difference between reading and hashing.

A large log is checked by worker processes, one per core: each opens its own read
connection and checks a share of the aligned chunks (``_chunks.check_chunk``), and this
process folds their small results into the tree in index order, exactly as it folds the
chunks it checks itself (small logs, or when workers cannot start).

All of them verify the same log. This process fixes the log's size and reads its
erasure records in one read transaction, open until the end, and every read is bounded
by that size. On PostgreSQL the workers import that transaction's snapshot, so they see
exactly what it sees. SQLite cannot share a snapshot, so a worker's may be a little
later; in between, a log can only grow past the size, or have entries erased. An
erasure deletes an entry's private values and adds its erasure record in one
transaction, so each worker checks private values against the erasure records it sees
itself, while the report and the erasure entries are checked against the records of this
process's snapshot.

Workers are forked (when this process has no other thread; else they come from a fork
server) before this process opens its snapshot: a child must not inherit a SQLite
connection that holds locks, which its copy of SQLite would count as its own.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import re
import sqlite3
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from typing import Any

import sqlalchemy as sa

from audit._checkpoints import UNSIGNED_WINDOW
from audit._chunks import (
    CHUNK_LEVEL,
    Checked,
    Chunk,
    check_chunk,
    check_in_order,
    passes,
    sound_chunk,
    unsigned_times,
)
from audit._readonly import as_stored
from audit._report import Report
from audit.checkpoint import Checkpoint, NoteVerifier
from audit.store import Store
from audit.verify import verify_source

__all__ = ["PARALLEL_FROM", "DatabaseSource", "verify_store"]

PARALLEL_FROM = 4 << CHUNK_LEVEL
"""Below this many entries, starting worker processes costs more than it saves."""
FORK_SERVER_FACTOR = 8
"""Workers that must come from a fork server need a log this many times as large: the
server imports this package when it starts, and each worker the caller's main module
(a second or two in all, against a few milliseconds for a fork)."""

_ENTRIES = "SELECT idx, leaf, leaf_hash FROM audit_entries ORDER BY idx"
_RANGE = "SELECT leaf, leaf_hash FROM audit_entries WHERE idx >= {0} AND idx < {0} ORDER BY idx"
_FROM = (
    "SELECT idx, leaf, leaf_hash FROM audit_entries WHERE idx >= {0} AND idx < {0}"
    " ORDER BY idx LIMIT {0}"
)
# Names in byte order, as canonical JSON orders a leaf's commitments.
_OPENINGS = (
    "SELECT idx, name, salt, value FROM audit_openings WHERE idx BETWEEN {0} AND {0}"
    " ORDER BY idx, name{1}"
)
_ERASURES = "SELECT idx, erasure_idx FROM audit_erasures WHERE idx BETWEEN {0} AND {0}"
# Two subqueries: SQLite reads min() or max() off the key only when alone in a query.
_EXTENT = "SELECT (SELECT min(idx) FROM audit_entries), (SELECT max(idx) FROM audit_entries)"
_ALL_ERASURES = "SELECT idx, erasure_idx FROM audit_erasures WHERE idx >= 0 AND idx < {0}"
_CHECKPOINTS = "SELECT size, note FROM audit_checkpoints ORDER BY size"
_ERASURE_RECORDS = (
    "SELECT idx, erased_at_us, erased_by, reason, erasure_idx FROM audit_erasures ORDER BY idx"
)
_ENTRY = (
    "SELECT e.leaf, x.erased_by, x.erasure_idx FROM audit_entries e"
    " LEFT JOIN audit_erasures x ON x.idx = e.idx WHERE e.idx = {0}"
)
_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f-]+")
# Entries read and checked at a time within a chunk: their leaves (about 1.4 MB) stay in
# a core's cache through the several passes over them, where a whole chunk's (11 MB) are
# read from memory again at each (half as many cache misses; a few per cent faster).
_PART = 1 << 11


class _Statements:
    """The scan's SQL in the driver's parameter style."""

    def __init__(self, postgres: bool) -> None:
        mark = "%s" if postgres else "?"
        self.range = _RANGE.format(mark)
        self.from_ = _FROM.format(mark)
        self.openings = _OPENINGS.format(mark, ' COLLATE "C"' if postgres else "")
        self.erasures = _ERASURES.format(mark)
        self.all_erasures = _ALL_ERASURES.format(mark)


def _cursor(driver: Any, postgres: bool, name: str | None = None) -> Any:
    # Binary results on PostgreSQL: bytea arrives as raw bytes instead of hex text.
    if postgres:
        return driver.cursor(name=name, binary=True) if name else driver.cursor(binary=True)
    return driver.cursor()


def _chunk(
    cursor: Any, sql: _Statements, indexes: list[int], leaves: list[bytes], hashes: list[bytes]
) -> Chunk:
    """The chunk of these rows, with the private values and erasures stored beside them."""
    bounds = (indexes[0], indexes[-1])
    cursor.execute(sql.openings, bounds)
    openings = cursor.fetchall()
    cursor.execute(sql.erasures, bounds)
    erasures = dict(cursor.fetchall())
    return Chunk(indexes, leaves, hashes, openings, erasures)


class _Reader:
    """Reads and checks aligned chunks of the first ``size`` entries, through one cursor."""

    def __init__(
        self, driver: Any, postgres: bool, size: int, chunk: int, sizes: list[int]
    ) -> None:
        self.driver = driver
        self.cursor = _cursor(driver, postgres)
        self.sql = _Statements(postgres)
        self.size, self.chunk, self.sizes = size, chunk, sizes

    def check(self, start: int, erasing: dict[int, int]) -> Checked | None:
        """Check the chunk from ``start``, if every chunk before it held no problem.

        ``erasing`` holds the erasure records whose erasure entry is in this chunk.
        None if no entry is stored from ``start`` on (then nothing follows either).
        """
        end = min(start + self.chunk, self.size)
        # Usually every part passes, and that is all. Erasures of entries before the
        # chunk's end only, as one ordered scan would have them (see ``_check_whole``).
        before_end = {erased: at for erased, at in erasing.items() if erased < end}
        hashes: list[bytes] = []
        times = None
        for first in range(start, end, _PART):
            part = self._part(first, min(first + _PART, end))
            if part is None or not passes(part, first, before_end):
                return self._check_whole(start, erasing)
            hashes += part.hashes
            times = unsigned_times(part.leaves, first, self.sizes, times)
        checked = sound_chunk(hashes, start, self.sizes)
        checked.unsigned = times
        return checked

    def _part(self, start: int, end: int) -> Chunk | None:
        """Entries ``[start, end)``, if they are all there and their text is UTF-8."""
        try:
            self.cursor.execute(self.sql.range, (start, end))
            rows = self.cursor.fetchall()
            if len(rows) != end - start:
                return None
            # Indexes are unique integers: all of them are here, in order.
            leaves, hashes = (list(column) for column in zip(*rows, strict=True))
            return _chunk(self.cursor, self.sql, list(range(start, end)), leaves, hashes)
        except sqlite3.OperationalError:
            # Text that is not UTF-8 fails the read: ``_check_whole`` reads it as stored
            # (and raises again any other error).
            return None

    def _check_whole(self, start: int, erasing: dict[int, int]) -> Checked | None:
        """Read the whole chunk, as one ordered scan of the whole table would from
        ``start`` (so a gap is reported the same way), and name its first problem."""
        cursor, sql = self.cursor, self.sql
        with as_stored(self.driver):
            cursor.execute(sql.from_, (start, self.size, self.chunk))
            rows = cursor.fetchall()
            if not rows:
                return None
            indexes, leaves, hashes = (list(column) for column in zip(*rows, strict=True))
            chunk = _chunk(cursor, sql, indexes, leaves, hashes)
        # This chunk's records, and those of earlier entries (never later ones) that
        # an entry of this chunk erased.
        last = indexes[-1]
        erased_by = {erased: at for erased, at in erasing.items() if erased <= last}
        erased_by.update(chunk.erasures)
        return check_chunk(chunk, start, erased_by, self.sizes)


class _Erasures:
    """The erasure records of the parent's snapshot, by erased entry and by chunk."""

    def __init__(self, rows: Sequence[tuple[int, object]], size: int, chunk: int) -> None:
        # Only records that name an entry: the chunk of the erased entry reports the others.
        self.by_erased = {erased: at for erased, at in rows if type(at) is int}
        self.erased = sorted(self.by_erased)
        self.chunk = chunk
        self.by_chunk: dict[int, dict[int, int]] = {}
        for erased, erasure in self.by_erased.items():
            if 0 <= erasure < size:
                self.by_chunk.setdefault(erasure // chunk, {})[erased] = erasure

    def erasing(self, start: int) -> dict[int, int]:
        """The records whose erasure entry is in the chunk from ``start``."""
        return self.by_chunk.get(start // self.chunk, {})

    def attribute(self, checked: Checked) -> Checked:
        """Give the chunk the records of its rows as this snapshot holds them."""
        first, last = checked.rows
        found = self.erased[bisect_left(self.erased, first) : bisect_right(self.erased, last)]
        checked.erasures = {erased: self.by_erased[erased] for erased in found}
        return checked


@dataclass(frozen=True, slots=True)
class _Setup:
    """What a worker needs to read the same log as this process."""

    url: str
    postgres: bool
    snapshot: str | None
    """This process's exported snapshot (PostgreSQL)."""
    size: int
    chunk: int
    sizes: list[int]


class _WorkerUnavailable(Exception):
    """A worker could not open its connection: this process does its work instead."""


# In a worker process: its reader, and the connection it reads through.
_worker: dict[str, Any] = {}


def _start_worker() -> None:
    # Each chunk allocates some 50,000 row tuples and lists, and the collector would
    # keep walking every object inherited from the parent; the worker makes no
    # reference cycles worth collecting before it exits (about 20% faster).
    gc.disable()


def _open_reader(setup: _Setup) -> _Reader:
    """This worker's connection, in one read transaction on the parent's snapshot."""
    engine = sa.create_engine(setup.url, poolclass=sa.pool.NullPool, hide_parameters=True)
    raw = engine.raw_connection()
    driver: Any = raw.driver_connection
    if setup.postgres:
        driver.autocommit = True
        driver.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        driver.execute(f"SET TRANSACTION SNAPSHOT '{setup.snapshot}'")
    else:
        driver.isolation_level = None
        driver.execute("PRAGMA busy_timeout=60000")
        driver.execute("BEGIN")  # one read transaction: one snapshot for every chunk
    _worker["raw"] = raw  # the connection lives as long as the process
    return _Reader(driver, setup.postgres, setup.size, setup.chunk, setup.sizes)


def _check_in_worker(setup: _Setup, start: int, erasing: dict[int, int]) -> Checked | None:
    reader = _worker.get("reader")
    if reader is None:
        try:
            reader = _worker["reader"] = _open_reader(setup)
        except Exception as exc:  # noqa: BLE001 - any failure to connect means the same
            raise _WorkerUnavailable(str(exc)) from None
    return reader.check(start, erasing)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _context() -> BaseContext | None:
    """How to start workers cheaply and safely, if there is a way."""
    methods = multiprocessing.get_all_start_methods()
    # A fork copies only the calling thread, so it is safe while that is the only one;
    # it is also nearly free.
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    # Otherwise fork from a server process that has no other threads (it is started
    # once, with this module loaded).
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    # Starting a whole interpreter per worker would cost more than it saves.
    return None


class DatabaseSource:
    """A ``verify.CheckingSource`` over a ``Store``: rows as stored, nothing trusted.

    ``workers`` is how many processes check chunks (default: one per core);
    ``parallel_from`` the log size from which they are used; ``chunk_level`` sets the
    size of a chunk, ``2**chunk_level`` entries (tests use small ones).
    """

    def __init__(
        self,
        store: Store,
        *,
        workers: int | None = None,
        parallel_from: int = PARALLEL_FROM,
        chunk_level: int = CHUNK_LEVEL,
    ) -> None:
        self._store = store
        self.read_nodes = store.read_nodes
        self._workers = workers
        self._parallel_from = parallel_from
        self._chunk = 1 << chunk_level

    def checkpoints(self) -> list[tuple[int, object]]:
        return [(int(size), note) for size, note in self._as_stored(_CHECKPOINTS)]

    def erasure_records(self) -> list[tuple[int, object, object, object, object]]:
        """Every erasure record as ``(erased, erased_at_us, erased_by, reason,
        erasure entry)``, by erased entry, as stored."""
        return [(int(erased), *rest) for erased, *rest in self._as_stored(_ERASURE_RECORDS)]

    def entry(self, index: int) -> tuple[object, object, object] | None:
        """Entry ``index``'s leaf, and who erased it in which entry (or None twice), as
        stored; None if there is no entry ``index``."""
        mark = "%s" if self._store.is_postgres else "?"
        rows = self._as_stored(_ENTRY.format(mark), (index,))
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None

    def _as_stored(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """The rows of one statement exactly as stored, of whatever type."""
        with self._store.read() as conn:
            driver = conn.connection.driver_connection
            cursor = _cursor(driver, self._store.is_postgres)
            try:
                with as_stored(driver):
                    cursor.execute(sql, params)
                    return list(cursor.fetchall())
            finally:
                cursor.close()

    def chunks(self, size: int) -> Generator[Chunk]:
        with self._store.read(snapshot=True) as conn:
            driver = conn.connection.driver_connection
            yield from self._scan(driver, size)

    def _scan(self, driver: Any, size: int) -> Generator[Chunk]:
        """Every row, read by one ordered scan of the whole table."""
        postgres = self._store.is_postgres
        sql = _Statements(postgres)
        scan = _cursor(driver, postgres, "audit_verify")
        lookup = _cursor(driver, postgres)
        try:
            if postgres:
                scan.itersize = size
            with as_stored(driver):
                scan.execute(_ENTRIES)
                while rows := scan.fetchmany(size):
                    indexes, leaves, hashes = (list(c) for c in zip(*rows, strict=True))
                    yield _chunk(lookup, sql, indexes, leaves, hashes)
        finally:
            scan.close()
            lookup.close()

    def checked(self, sizes: list[int]) -> Generator[Checked]:
        """Every chunk, checked: in worker processes if the log is large enough."""
        # Workers start before this process opens its snapshot (see above); they read
        # only below the size fixed in it.
        pool = None
        workers, context = self._workers_for(self._store.size())
        if context is not None and workers > 1:
            pool = _start_workers(context, workers)
        try:
            yield from self._checked(sizes, pool)
        finally:
            if pool is not None:
                # Stopping early (at a problem) must not wait for the chunks after it.
                pool.shutdown(wait=True, cancel_futures=True)

    def _checked(self, sizes: list[int], pool: ProcessPoolExecutor | None) -> Generator[Checked]:
        store, chunk = self._store, self._chunk
        with store.read(snapshot=True) as conn:
            driver = conn.connection.driver_connection
            lowest, highest = conn.execute(sa.text(_EXTENT)).one()
            if lowest != 0:
                # Empty, or not starting at entry 0: a damaged log, read the simple way.
                yield from check_in_order(self._scan(driver, chunk), sizes)
                return
            size = int(highest) + 1
            cursor = _cursor(driver, store.is_postgres)
            cursor.execute(_Statements(store.is_postgres).all_erasures, (size,))
            erasures = _Erasures(cursor.fetchall(), size, chunk)
            cursor.close()
            starts = range(0, size, chunk)
            done = 0
            if pool is not None:
                snapshot = None
                if store.is_postgres:
                    snapshot = str(conn.scalar(sa.text("SELECT pg_export_snapshot()")))
                setup = _Setup(self._url(), store.is_postgres, snapshot, size, chunk, sizes)
                for part in _in_workers(pool, setup, [erasures.erasing(s) for s in starts]):
                    if part is None:
                        return
                    yield erasures.attribute(part)
                    done += 1
            # Small logs, and whatever the workers could not do: in this process.
            reader = _Reader(driver, store.is_postgres, size, chunk, sizes)
            for start in starts[done:]:
                part = reader.check(start, erasures.erasing(start))
                if part is None:
                    return
                yield erasures.attribute(part)

    def _workers_for(self, size: int) -> tuple[int, BaseContext | None]:
        """How many workers to check a log of ``size`` entries, and how to start them."""
        context = _context()
        if context is None:
            return 1, None
        smallest = self._parallel_from
        if context.get_start_method() != "fork":
            smallest *= FORK_SERVER_FACTOR
        if size < smallest:
            return 1, None
        chunks = -(-size // self._chunk)
        return min(self._workers or _cores(), chunks), context

    def _url(self) -> str:
        return self._store.engine.url.render_as_string(hide_password=False)


def _start_workers(context: BaseContext, count: int) -> ProcessPoolExecutor | None:
    """A pool of ``count`` started worker processes, or None if they cannot start."""
    pool = ProcessPoolExecutor(count, mp_context=context, initializer=_start_worker)
    try:
        # The first task starts every process: forked ones, now.
        pool.submit(int).result()
    except (BrokenProcessPool, OSError):
        pool.shutdown(wait=True, cancel_futures=True)
        return None
    return pool


def _in_workers(
    pool: ProcessPoolExecutor, setup: _Setup, erasing: list[dict[int, int]]
) -> Generator[Checked | None]:
    """Each chunk's result, in order; stops early (for this process to go on) if a
    worker fails."""
    if setup.snapshot is not None and not _SNAPSHOT_ID.fullmatch(setup.snapshot):
        return
    starts = range(0, setup.size, setup.chunk)
    try:
        yield from pool.map(_check_in_worker, [setup] * len(starts), starts, erasing)
    except (BrokenProcessPool, OSError, _WorkerUnavailable):
        return


def verify_store(
    store: Store,
    verifier: NoteVerifier,
    *,
    origin: str | None = None,
    kept: Checkpoint | None = None,
    progress: Callable[[int], None] | None = None,
    max_unsigned_span: float = UNSIGNED_WINDOW,
) -> Report:
    """Verify the log in ``store``, trusting only ``verifier``'s key, and against the
    checkpoint ``kept`` outside it if given (see ``verify.verify_source``, and for what
    it raises)."""
    return verify_source(
        DatabaseSource(store),
        verifier,
        origin or verifier.name,
        kept=kept,
        progress=progress,
        max_unsigned_span=max_unsigned_span,
    )
