"""Where the log lives: SQLAlchemy 2 on SQLite (WAL) or PostgreSQL.

Index assignment is the one thing that must be serialised. On PostgreSQL every append
transaction first takes ``pg_advisory_xact_lock`` and only then reads the log's size, so
any number of processes can append to one log without repeating or skipping an index;
the lock is released by the commit. On SQLite the same is done by ``BEGIN IMMEDIATE``,
and commits are fsynced (``synchronous=FULL``) so that a returned append survives a
crash, not only a killed process. Within one process, SQLite writers to the file also
take ``sqlite_write_lock``, so one waits no longer than the write before it.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from audit import _readonly
from audit import _tables as t
from audit._misstored import stored_as
from audit._readonly import read_only_engine, sqlite_file
from audit._rows import Rows, placeholders
from audit.entry import PreparedEntry
from audit.errors import EntryNotFound, StoreError
from audit.merkle import CompactRange, NodeId, fold_frontier, perfect_cover

__all__ = ["SQLITE_CHECKPOINT_PAGES", "Store", "advisory_lock_key", "sqlite_write_lock"]


def advisory_lock_key(name: str) -> int:
    """The PostgreSQL advisory lock key of the lock called ``name``: the first eight
    bytes of its SHA-256, as the signed 64-bit integer ``pg_advisory_xact_lock`` takes."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


_LOCK_KEY = advisory_lock_key("junction-audit")
_MIGRATIONS = Path(__file__).with_name("migrations")

SQLITE_CHECKPOINT_PAGES = 20_000
"""Pages (4 KiB each) the write-ahead log may hold before a commit copies them into the
database file (SQLite's default is 1,000). The copy writes each changed page once,
however often it changed since the last one; the search indexes and subject
references change the same pages again and again, so copying less often writes much
less: a tenth to a quarter more appends a second, for a write-ahead log of up to about
80 MB. Every connection that writes to the file must use the same value, or
the one with the smaller does the copying for all: the log's connections and the
broker's (``broker.db``) set it."""

_WRITE_LOCKS: dict[str, threading.RLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def sqlite_write_lock(engine: Engine) -> AbstractContextManager[Any]:
    """The lock every writer in this process takes before it writes to ``engine``'s
    SQLite file: one per file, whichever engine opened it. On PostgreSQL, no lock.

    SQLite lets one transaction write at a time. A writer that finds the file taken
    sleeps and looks again, 1, 2, 5, 10 ... up to 100 ms later, so under load it
    often waits tens of milliseconds after the other has committed. Writers holding
    this lock hand over the moment one commits: the log's writer takes it, and so
    must any other writer of the process to the same file (the broker keeps its
    tables beside its log). Other processes still wait as SQLite makes them.
    Re-entrant, so a thread that holds it may open another write; a holder must not
    wait for another thread that writes.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return nullcontext()
    key = os.path.realpath(database)
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.RLock())


def _sqlite_pragmas(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to the "begin" hook below (the SQLAlchemy recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")
        # Erased values are overwritten, not merely unlinked from the page.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("audit_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


_MAX_INDEX = "SELECT max(idx) FROM audit_entries"
_LEAVES_IN = "SELECT idx, leaf_hash, 0 FROM audit_entries WHERE idx IN ({})"
_NODES_IN = "SELECT id, hash, 1 FROM audit_nodes WHERE id IN ({})"
_LATEST_CHECKPOINT = "SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1"
_META = "SELECT value FROM audit_meta WHERE key = {}"
_READ_TABLES = (t.meta, t.entries, t.openings, t.erasures, t.nodes, t.checkpoints)
"""The tables the log is read from: a database without one of them cannot be examined."""


_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def _create_engine(url: str) -> Engine:
    """An engine for ``url`` on SQLite or PostgreSQL. Raises ``StoreError``, whose
    message never shows the URL's password."""
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        shown = _PASSWORD.sub(r"\1***@", url)
        raise StoreError(f"cannot use database URL {shown!r}: {exc}") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(f"the audit log runs on SQLite or PostgreSQL, not {backend}")
    try:
        # Statement values are entries' private values: keep them out of error messages.
        return sa.create_engine(parsed, hide_parameters=True)
    except (sa.exc.ArgumentError, ImportError) as exc:
        shown = parsed.render_as_string(hide_password=True)
        raise StoreError(f"cannot use database URL {shown!r}: {exc}") from None


def _sqlite_path(engine: Engine) -> Path:
    path = sqlite_file(engine.url)
    if path is None:
        raise StoreError("an audit log needs a file, not an in-memory SQLite database")
    return path


class _Stale(Exception):
    """Another process appended since this store's last append."""


class Store:
    """The log's tables behind a narrow interface; thread-safe (one engine, a pool)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"
        self._write_lock = sqlite_write_lock(engine)
        # The frontier after the last append through this store; reused while no other
        # process has appended in between.
        self._compact: CompactRange | None = None
        mark = "%s" if self.is_postgres else "?"
        self._mark = mark
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._integrity_error: type[Exception] = engine.dialect.loaded_dbapi.IntegrityError

        # psycopg's inserts go through a raw cursor with the server's own numbered
        # parameters ($1, $2, ...): with "%s" it would parse each multi-row statement
        # again at every execution (it caches statements of at most 50 parameters),
        # a fifth of the appending thread's time.
        self._raw_cursor: Any = None
        if engine.dialect.driver == "psycopg":
            import psycopg  # PostgreSQL's driver is an optional extra

            self._raw_cursor = psycopg.RawCursor
        numbered = self._raw_cursor is not None

        def insert(table: sa.Table) -> tuple[str, int, bool]:
            columns = [column.name for column in table.columns]
            # Names come from our own table definitions, never from input.
            head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "  # noqa: S608
            return head, len(columns), numbered

        self._sql_entries = insert(t.entries)
        self._sql_subjects = insert(t.subjects)
        self._sql_openings = insert(t.openings)
        self._sql_nodes = insert(t.nodes)
        self._sql_meta = _META.format(mark)

    def _insert_cursor(self, driver: Any) -> Any:
        """A cursor for ``_insert``'s statements."""
        return driver.cursor() if self._raw_cursor is None else self._raw_cursor(driver)

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, sqlite_synchronous: str = "FULL") -> Store:
        """Connect to ``url`` and bring its schema up to date. Raises ``StoreError``.

        On SQLite, ``sqlite_synchronous="FULL"`` (the default) fsyncs every commit, so
        a returned append survives a power cut; ``"NORMAL"`` survives a crashed or
        killed process but may lose the last commits on a power cut, for several
        times the throughput on a slow disk.
        """
        if sqlite_synchronous not in ("FULL", "NORMAL"):
            raise StoreError("sqlite_synchronous must be FULL or NORMAL")
        engine = _create_engine(url)
        if engine.dialect.name == "sqlite":
            path = _sqlite_path(engine)
            if not migrate and not path.is_file():
                raise StoreError(f"there is no audit database at {path}")
            _sqlite_pragmas(engine, sqlite_synchronous)
        store = cls(engine)
        if migrate:
            store.migrate()
        else:
            store._require_log()
        return store

    @classmethod
    def open_read_only(cls, url: str) -> Store:
        """Connect to the log at ``url`` to examine it, never changing it. Raises
        ``StoreError``.

        On SQLite the file is opened read-only (see ``audit._readonly``), so it may be on
        read-only storage and is left byte for byte as it was, whatever it holds.
        """
        engine = _create_engine(url)
        if engine.dialect.name == "sqlite":
            path = _sqlite_path(engine)
            engine.dispose()
            if not path.is_file():
                raise StoreError(f"there is no audit database at {path}")
            engine = read_only_engine(path)
        store = cls(engine)
        store._require_log()
        return store

    def _require_log(self) -> None:
        """Raise ``StoreError`` unless the database holds every table a reader reads."""
        try:
            present = set(sa.inspect(self.engine).get_table_names())
        except sa.exc.OperationalError as exc:
            raise StoreError(f"cannot reach the audit database: {exc.orig}") from None
        if t.meta.name not in present:
            raise StoreError("that database holds no audit log: check the URL")
        missing = [table.name for table in _READ_TABLES if table.name not in present]
        if missing:
            raise StoreError(
                f"the audit database has no {' or '.join(missing)} table: it was damaged,"
                " or is not a whole Junction audit log"
            )

    def migrate(self) -> None:
        """Apply any pending alembic migration. Raises ``StoreError``."""
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        try:
            with self.write() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except sa.exc.SQLAlchemyError as exc:
            detail = getattr(exc, "orig", None) or exc
            raise StoreError(f"cannot prepare the audit tables: {detail}") from None

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction holding the log's append lock until it commits."""
        try:
            with (
                self._write_lock,
                self.engine.connect().execution_options(audit_write=True) as conn,
                conn.begin(),
            ):
                if self.is_postgres:
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
                yield conn
        except sa.exc.OperationalError as exc:
            raise StoreError(f"the audit database is unavailable: {exc.orig}") from None

    @contextmanager
    def read(self, *, snapshot: bool = False) -> Iterator[Connection]:
        """A read transaction; with ``snapshot`` every statement sees the same state.

        (SQLite in WAL mode gives every read transaction a snapshot anyway.)
        """
        try:
            conn = self.engine.connect()
            if snapshot and self.is_postgres:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn, conn.begin():
                yield conn
        except sa.exc.OperationalError as exc:
            raise StoreError(f"the audit database is unavailable: {exc.orig}") from None
        except self._driver_error as exc:  # from a reader that went to the driver itself
            raise StoreError(f"the audit database is unavailable: {exc}") from None

    def close(self) -> None:
        self.engine.dispose()

    def database_files(self) -> list[Path]:
        """The files that hold the log: on SQLite the database and the journals beside
        it (whether or not they exist now); none on PostgreSQL."""
        path = None if self.is_postgres else sqlite_file(self.engine.url)
        if path is None:
            return []
        return [path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", "-journal"))]

    # -- metadata ------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """The value recorded under ``key``, if any. Raises ``StoreError``, also when
        what is stored there is not text."""
        rows = self._query(self._sql_meta, (key,), as_stored=True)
        if not rows:
            return None
        value = rows[0][0]
        if not isinstance(value, str):
            raise StoreError(
                f"the log's {key} is stored as {stored_as(value)}, not text: the audit"
                " database was altered"
            )
        return value

    def set_meta_once(self, key: str, value: str) -> str:
        """Record ``value`` under ``key`` unless one is there; return the stored value."""
        with self.write() as conn:
            found = conn.scalar(sa.select(t.meta.c.value).where(t.meta.c.key == key))
            if found is None:
                conn.execute(sa.insert(t.meta).values(key=key, value=value))
                return value
            return str(found)

    # -- appending -----------------------------------------------------------------

    def append_batch(self, batch: Sequence[PreparedEntry], now_us: int) -> int:
        """Store ``batch`` as consecutive entries in one transaction; return the first index."""
        cached = self._compact
        if self.is_postgres and cached is not None and all(i.erases is None for i in batch):
            try:
                return self._append_pipelined(batch, cached)
            except _Stale:
                self._compact = None  # another process appended: take the checked path
        with self.write() as conn:
            size = self._size(conn)
            if cached is not None and cached.size == size:
                compact = CompactRange(size, cached.frontier)
            else:
                compact = CompactRange(size, self._frontier(conn, size))
            rows = Rows.build(batch, size, compact)
            driver = conn.connection.driver_connection
            assert driver is not None  # noqa: S101 - an open connection has one
            cursor = self._insert_cursor(driver)
            try:
                self._insert_rows(cursor, rows)
            except self._driver_error as exc:
                raise StoreError(f"the entries were not stored: {exc}") from None
            finally:
                cursor.close()
            for row in rows.erasures:
                conn.execute(sa.delete(t.openings).where(t.openings.c.idx == row["idx"]))
                conn.execute(sa.insert(t.erasures).values(row))
        self._compact = compact
        if rows.erasures and not self.is_postgres:
            self._flush_wal()
        return size

    def _append_pipelined(self, batch: Sequence[PreparedEntry], cached: CompactRange) -> int:
        """PostgreSQL, when this store made the last append it knows of: the lock, the
        size check and every insert go to the server in one round trip (psycopg's
        pipeline mode), then the commit. The entries are built for the size this store
        last left the log at; if another process appended since, the size check (and
        the primary keys) refuse them, nothing is committed, and ``_Stale`` is raised.
        """
        size = cached.size
        compact = CompactRange(size, cached.frontier)
        rows = Rows.build(batch, size, compact)
        try:
            with self.engine.connect() as conn, conn.begin():
                driver: Any = conn.connection.driver_connection
                lock, last, rest = driver.cursor(), driver.cursor(), self._insert_cursor(driver)
                with lock, last, rest:
                    with driver.pipeline():
                        lock.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                        last.execute(_MAX_INDEX)
                        self._insert_rows(rest, rows)
                    # The pipeline is synced: every statement ran, in order, under the lock.
                    found = last.fetchone()
                if found is None or found[0] != (size - 1 if size else None):
                    raise _Stale
        except self._driver_error as exc:
            if isinstance(exc, self._integrity_error):
                raise _Stale from None
            raise StoreError(f"the entries were not stored: {exc}") from None
        except sa.exc.OperationalError as exc:
            raise StoreError(f"the audit database is unavailable: {exc.orig}") from None
        self._compact = compact
        return size

    def _insert_rows(self, cursor: Any, rows: Rows) -> None:
        # The driver's own statements: SQLAlchemy's per-row parameter handling would
        # cost as much as the database work on a small batch.
        for sql, values in (
            (self._sql_entries, rows.entries),
            (self._sql_subjects, rows.subjects),
            (self._sql_openings, rows.openings),
            (self._sql_nodes, rows.nodes),
        ):
            self._insert(cursor, sql, values)

    def _flush_wal(self) -> None:
        """Copy the WAL into the database file and empty it.

        With ``secure_delete`` the erased values are zeroed in the database file, but
        the write-ahead log still holds the pages as they were until it is
        checkpointed. Best effort: a long-running reader can hold a checkpoint back,
        and the next one completes it.
        """
        raw = self.engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
        finally:
            raw.close()

    def _insert(
        self, cursor: Any, sql: tuple[str, int, bool], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        """A multi-row INSERT per table: one statement a batch, not one per row.

        Over the network that is one round trip; in-process (SQLite) it matters as much,
        because the driver lets go of the interpreter lock around every statement step,
        and under many appending threads each release costs the writer a wait to get
        the lock back.
        """
        if not rows:
            return
        head, columns, numbered = sql
        # SQLite allows 32,766 parameters a statement; PostgreSQL 65,535.
        per_statement = max(1, min(1000, 30_000 // columns))
        for start in range(0, len(rows), per_statement):
            part = rows[start : start + per_statement]
            values = placeholders(columns, len(part), numbered)
            cursor.execute(head + values, [v for r in part for v in r])

    # -- the tree ------------------------------------------------------------------

    @staticmethod
    def _size(conn: Connection) -> int:
        # Straight to the driver: this runs once per append transaction.
        last = conn.exec_driver_sql(_MAX_INDEX).scalar()
        return 0 if last is None else int(last) + 1

    def size(self) -> int:
        """The number of entries stored (signed or not)."""
        last = self._query(_MAX_INDEX)[0][0]
        return 0 if last is None else int(last) + 1

    def _nodes_statement(
        self, ids: Sequence[NodeId]
    ) -> tuple[str, tuple[int, ...], dict[int, NodeId]] | None:
        """One statement for these nodes: level 0 lives in audit_entries, the rest in
        audit_nodes. Plain SQL: building and caching an expression with two IN lists of
        varying length each time cost more than the database's own work."""
        leaves = [index for level, index in ids if level == 0]
        keys = {t.node_key(level, index): (level, index) for level, index in ids if level}
        parts: list[str] = []
        if leaves:
            parts.append(_LEAVES_IN.format(", ".join([self._mark] * len(leaves))))
        if keys:
            parts.append(_NODES_IN.format(", ".join([self._mark] * len(keys))))
        if not parts:
            return None
        return " UNION ALL ".join(parts), (*leaves, *keys), keys

    @staticmethod
    def _found_nodes(
        rows: Iterable[Sequence[Any]], keys: Mapping[int, NodeId]
    ) -> dict[NodeId, bytes]:
        # A hash stored as anything but bytes is no hash: one that matches nothing.
        return {
            keys[int(key)] if is_node else (0, int(key)): (
                bytes(hash_) if isinstance(hash_, bytes | bytearray | memoryview) else b""
            )
            for key, hash_, is_node in rows
        }

    def _read_nodes(self, conn: Connection, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        """``read_nodes`` inside a transaction already open on ``conn``."""
        statement = self._nodes_statement(ids)
        if statement is None:
            return {}
        sql, params, keys = statement
        return self._found_nodes(conn.exec_driver_sql(sql, params), keys)

    def read_nodes(self, ids: Sequence[NodeId]) -> Mapping[NodeId, bytes]:
        """Stored perfect-subtree hashes by ``(level, index)``: a ``merkle.NodeReader``."""
        statement = self._nodes_statement(ids)
        if statement is None:
            return {}
        sql, params, keys = statement
        return self._found_nodes(self._query(sql, params, as_stored=True), keys)

    def _query(
        self, sql: str, params: Sequence[Any] = (), *, as_stored: bool = False
    ) -> list[tuple[Any, ...]]:
        """The rows of one read statement, on a pooled driver connection; with
        ``as_stored``, text that is not UTF-8 is read as such (see ``_readonly.as_stored``).

        One statement needs no transaction around it: SQLite gives it a snapshot of
        its own, and PostgreSQL runs it in autocommit (one round trip, where a
        transaction takes three). Going straight to the driver spares the ~0.1 ms a
        SQLAlchemy connection costs, which the broker pays on every family query (the
        receipt's checkpoint) and every proof.
        """
        try:
            # A new pooled connection that cannot connect raises the driver's own error:
            # unlike ``Engine.connect``, ``raw_connection`` does not wrap it.
            raw = self.engine.raw_connection()
        except (sa.exc.DBAPIError, self._driver_error) as exc:
            raise StoreError(f"the audit database is unavailable: {exc}") from None
        driver: Any = raw.driver_connection
        try:
            if self.is_postgres:
                driver.autocommit = True
            try:
                cursor = driver.cursor()
                try:
                    with _readonly.as_stored(driver) if as_stored else nullcontext():
                        cursor.execute(sql, params)
                        return list(cursor.fetchall())
                finally:
                    cursor.close()
            finally:
                if self.is_postgres:
                    driver.autocommit = False
        except self._driver_error as exc:
            # A connection that failed may be broken: the pool must not hand it out again.
            raw.invalidate()
            if self.engine.dialect.is_disconnect(exc, driver, None):  # type: ignore[arg-type]
                # The server went away, and every pooled connection with it.
                self.engine.dispose()
            raise StoreError(f"the audit database is unavailable: {exc}") from None
        finally:
            raw.close()

    def _frontier(self, conn: Connection, size: int) -> list[bytes]:
        cover = perfect_cover(0, size)
        found = self._read_nodes(conn, cover)
        if len(found) != len(cover):
            raise StoreError(f"tree nodes for size {size} are missing: run junction audit verify")
        return [found[node] for node in cover]

    def root_at(self, size: int) -> bytes:
        """MTH of the first ``size`` entries, from O(log size) stored nodes."""
        with self.read() as conn:
            return fold_frontier(self._frontier(conn, size))

    # -- checkpoints ---------------------------------------------------------------

    def add_checkpoint(self, size: int, note: str, now_us: int) -> str:
        """Keep a signed checkpoint; a second one for the same size is dropped.
        Returns the note kept for ``size``."""
        with self.write() as conn:
            kept = conn.scalar(sa.select(t.checkpoints.c.note).where(t.checkpoints.c.size == size))
            if kept is None:
                conn.execute(
                    sa.insert(t.checkpoints).values(size=size, note=note, signed_at_us=now_us)
                )
                return note
            return str(kept)

    def checkpoints(self) -> list[tuple[int, str]]:
        """Every stored checkpoint as ``(size, note)``, smallest first."""
        with self.read() as conn:
            rows = conn.execute(
                sa.select(t.checkpoints.c.size, t.checkpoints.c.note).order_by("size")
            )
            return [(int(size), note) for size, note in rows]

    def checkpoint_covering(self, index: int) -> tuple[int, str] | None:
        """The latest checkpoint, if it covers entry ``index``."""
        latest = self.latest_checkpoint()
        return latest if latest is not None and latest[0] > index else None

    def latest_checkpoint(self) -> tuple[int, str] | None:
        rows = self._query(_LATEST_CHECKPOINT)
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    @staticmethod
    def _latest_checkpoint(conn: Connection) -> tuple[int, str] | None:
        row = conn.exec_driver_sql(_LATEST_CHECKPOINT).first()
        return None if row is None else (int(row[0]), str(row[1]))

    def head(self) -> tuple[int, tuple[int, str] | None, bytes | None]:
        """In one read: the log's size, its latest checkpoint, and the root hash at that
        size when no checkpoint covers the whole log yet (else ``None``)."""
        with self.read() as conn:
            size = self._size(conn)
            latest = self._latest_checkpoint(conn)
            root = None
            if size and (latest is None or latest[0] < size):
                root = fold_frontier(self._frontier(conn, size))
            return size, latest, root

    def checkpoint_at(self, size: int) -> str:
        """The note of the checkpoint at exactly ``size``. Raises ``EntryNotFound``."""
        with self.read() as conn:
            note = conn.scalar(sa.select(t.checkpoints.c.note).where(t.checkpoints.c.size == size))
        if note is None:
            raise EntryNotFound(f"the log has no checkpoint of size {size}")
        return str(note)
