"""The broker's own database: engine, sessions, schema migrations, driver errors.

SQLite (the embedded default, in WAL mode with foreign keys on) or PostgreSQL (through
psycopg) in production. The broker's alembic history keeps its own version table,
``broker_alembic_version``, because the audit log keeps its tables and its own history
in the same database. Every driver error becomes ``StoreUnavailable`` or ``Conflict``
here, and nowhere else. On SQLite, writes take the file's ``sqlite_write_lock``, which
the log's own writer takes too. ``Database.exclusive`` makes every process on the
database take turns, for work that must not interleave with another's.
"""

from __future__ import annotations

import fcntl
import re
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from audit.store import SQLITE_CHECKPOINT_PAGES, advisory_lock_key, sqlite_write_lock
from broker.errors import ConfigurationError, Conflict, StoreUnavailable

__all__ = [
    "VERSION_TABLE",
    "Base",
    "Database",
    "UTCDateTime",
    "create_engine",
    "upgrade",
]

VERSION_TABLE = "broker_alembic_version"
_MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for lock_timeout running out


class Base(DeclarativeBase):
    """Declarative base of every broker table."""


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A time stored as naive UTC and read back as an aware UTC ``datetime``.

    SQLite has no time zones; storing UTC everywhere keeps both backends alike.
    """

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("times stored by the broker must carry a time zone")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # As the audit log's connections to the file do (see SQLITE_CHECKPOINT_PAGES).
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")
        cursor.close()


def _shown(url: str) -> str:
    """``url`` for a message, its password masked (whether or not the URL parses)."""
    return re.sub(r"(://[^/:@]*:)[^/]*@", r"\1***@", url)


def create_engine(url: str) -> Engine:
    """An engine for ``url`` (SQLite or PostgreSQL). Raises ``ConfigurationError``."""
    try:
        parsed = sa.engine.make_url(url)
        # A file cannot drop a pooled connection as a server can: no ping before use.
        engine = sa.create_engine(
            parsed,
            pool_pre_ping=parsed.get_backend_name() != "sqlite",
            # Statement values are personal data: keep them out of error messages.
            hide_parameters=True,
        )
    except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
        # ValueError: a port that is no number.
        raise ConfigurationError(f"cannot use database URL {_shown(url)!r}: {exc}") from None
    if engine.dialect.name == "sqlite":
        if url.rstrip("/").endswith(("sqlite:", ":memory:")):
            raise ConfigurationError("the broker needs a SQLite file, not an in-memory database")
        database = engine.url.database
        if database:
            folder = Path(database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot create {folder}, the SQLite file's folder: {exc.strerror}"
                ) from None
        _sqlite_pragmas(engine)
    elif engine.dialect.name != "postgresql":
        raise ConfigurationError(
            f"the broker runs on SQLite or PostgreSQL, not {engine.dialect.name}"
        )
    return engine


def upgrade(engine: Engine) -> None:
    """Bring the broker's tables up to the newest migration. Raises ``StoreUnavailable``."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except sa.exc.SQLAlchemyError as exc:
        raise StoreUnavailable(
            f"cannot prepare the broker's tables: {getattr(exc, 'orig', None) or exc}"
        ) from None


class Database:
    """Sessions over one engine; translates driver errors in one place."""

    def __init__(self, engine: Engine, *, lock_timeout_seconds: float = 30.0) -> None:
        """``lock_timeout_seconds``: how long ``exclusive`` waits for its lock (by
        default as long as a SQLite write waits for the file)."""
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._write_lock = sqlite_write_lock(engine)
        self._lock_timeout = lock_timeout_seconds

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Database:
        """Connect to ``url`` and (by default) migrate it.

        Raises ``ConfigurationError`` for an unusable URL, ``StoreUnavailable`` if the
        database cannot be reached or migrated.
        """
        database = cls(create_engine(url))
        if migrate:
            upgrade(database.engine)
        return database

    def read(self) -> AbstractContextManager[Connection]:
        """A plain connection in one transaction, committed on success, for hot paths.

        Core statements on it skip the ORM, which costs several times the statement
        itself for the small reads and writes the family query makes. Errors as for
        ``session``.
        """
        return self._connection(nullcontext())

    def write(self) -> AbstractContextManager[Connection]:
        """The same, for a caller that writes: on SQLite it holds the write lock."""
        return self._connection(self._write_lock)

    @contextmanager
    def _connection(self, lock: AbstractContextManager[Any]) -> Iterator[Connection]:
        try:
            with lock, self.engine.connect() as connection, connection.begin():
                yield connection
        except sa.exc.SQLAlchemyError as exc:
            raise _translated(exc) from None

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error.

        A session that writes says so (``write=True``): on SQLite it then holds the
        write lock throughout. It must not wait on the audit log meanwhile (the log's
        writer takes the same lock): callers log a change before they store it.
        Raises ``Conflict`` when a uniqueness or reference rule is broken,
        ``StoreUnavailable`` for any other database failure.
        """
        lock = self._write_lock if write else nullcontext()
        try:
            with lock, self._sessions() as session, session.begin():
                yield session
        except sa.exc.SQLAlchemyError as exc:
            raise _translated(exc) from None

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold the lock called ``name`` until the block ends, against this and every
        other process using the database: the block runs while no other holds it.

        On PostgreSQL it is a transaction-scoped advisory lock (``pg_advisory_xact_lock``,
        keyed by ``junction-<name>``) on a connection of its own, released by the end of
        that transaction, so also when the process dies. On SQLite the file's write lock
        cannot serve: the block may wait on the audit log's writer, which needs it; an
        exclusive ``flock`` on ``<database file>-<name>.lock`` beside it serves instead.
        Not re-entrant. Raises ``StoreUnavailable`` when the lock is not had within the
        lock timeout (30 seconds unless told) or the database fails.
        """
        if self.engine.dialect.name == "sqlite":
            with self._file_lock(name):
                yield
            return
        try:
            with self.engine.connect() as connection, connection.begin():
                # In whole milliseconds, and at least one: 0 would mean no limit.
                timeout = f"{max(1, round(self._lock_timeout * 1000))}ms"
                connection.execute(sa.select(sa.func.set_config("lock_timeout", timeout, True)))
                connection.execute(
                    sa.select(sa.func.pg_advisory_xact_lock(advisory_lock_key(f"junction-{name}")))
                )
                yield
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
                raise self._held_too_long(name) from None
            raise _translated(exc) from None
        except sa.exc.SQLAlchemyError as exc:
            raise _translated(exc) from None

    @contextmanager
    def _file_lock(self, name: str) -> Iterator[None]:
        path = Path(f"{self.engine.url.database}-{name}.lock")
        deadline = time.monotonic() + self._lock_timeout
        try:
            file = path.open("a")
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot open the {name} lock file {path}: {exc.strerror}; the broker must "
                "be able to write beside its database"
            ) from None
        with file:
            # flock has no timeout of its own: try, and wait a little between tries.
            while True:
                try:
                    fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise self._held_too_long(name) from None
                    time.sleep(0.005)
            # Closing the file releases the lock.
            yield

    def _held_too_long(self, name: str) -> StoreUnavailable:
        return StoreUnavailable(
            f"waited {self._lock_timeout:g} seconds for the {name} lock, which another broker "
            "process holds; try again shortly, and if this persists look for a stuck one"
        )

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()


def _translated(exc: sa.exc.SQLAlchemyError) -> Exception:
    """The broker's error for a failed database call: ``Conflict`` for a broken
    uniqueness or reference rule, else ``StoreUnavailable``."""
    cause = type(getattr(exc, "orig", exc)).__name__
    if isinstance(exc, sa.exc.IntegrityError):
        return Conflict(
            f"the change conflicts with a stored record ({cause}); read the current state and retry"
        )
    return StoreUnavailable(f"the broker's database failed; try again shortly ({cause})")
