"""Opening a SQLite log read-only, to examine it as evidence.

The commands that only read a log (verify, prove, consistency, checkpoint, export) must
leave the file they examine exactly as it was: no switch to WAL, no pragma that writes,
no table created, no empty file grown. They must also work on storage they cannot write
to. So SQLite opens the file with ``mode=ro`` (https://www.sqlite.org/uri.html), and a
connection only sets how long it waits for a lock.

A log in WAL mode keeps its newest transactions in its ``-wal`` file until they are
copied into the database file; a reader finds them through the ``-shm`` index, which
SQLite creates if it is missing (so a log that no process has open is left with an
empty ``-wal`` and a ``-shm`` beside it; the database file is not touched). Where
neither can be created, SQLite refuses to open the file (https://www.sqlite.org/wal.html,
"Read-Only Databases"). If then no ``-wal`` or rollback journal holds anything, the
database file alone is the whole log, and it is opened ``immutable``, which needs
neither. Otherwise reading the file alone would silently miss the newest entries, so it
is refused with what to do instead.

Text a SQLite file holds need not be UTF-8; reading it the usual way fails the whole
read, so where rows may be damaged they are read ``as_stored``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine

from audit._misstored import Undecodable
from audit.errors import StoreError

__all__ = ["as_stored", "read_only_engine", "sqlite_file"]

_PROBE = "SELECT count(*) FROM sqlite_master"
# What SQLite answers when it cannot create the -wal or -shm file it needs.
_CANNOT_CREATE = (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY)


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL names, plainly or as a ``file:`` URI (with ``uri=true``);
    None for an in-memory database."""
    database = url.database
    if database and url.query.get("uri") in ("true", "1") and database.startswith("file:"):
        database = unquote(urlsplit(database).path)
    if not database or database == ":memory:":
        return None
    return Path(database)


def _engine(path: Path, *, immutable: bool) -> Engine:
    query = {"mode": "ro", "uri": "true"}
    if immutable:
        query["immutable"] = "1"
    database = "file:" + quote(str(path.absolute()))
    engine = sa.create_engine(
        URL.create("sqlite", database=database, query=query), hide_parameters=True
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Transactions begin where the hook below says (the SQLAlchemy recipe), so a
        # read transaction is one snapshot.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA busy_timeout=60000")

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


def _holds_changes(path: Path, ending: str) -> bool:
    try:
        return path.with_name(path.name + ending).stat().st_size > 0
    except FileNotFoundError:
        return False


def read_only_engine(path: Path) -> Engine:
    """An engine that reads the SQLite file ``path`` and never writes to it.

    Raises ``StoreError`` if the file cannot be read without writing beside it;
    SQLAlchemy's ``DatabaseError`` if it is not a SQLite database.
    """
    engine = _engine(path, immutable=False)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(_PROBE)
    except sa.exc.OperationalError as exc:
        engine.dispose()
        code = getattr(exc.orig, "sqlite_errorcode", 0) & 0xFF
        if code not in _CANNOT_CREATE:
            raise StoreError(f"cannot reach the audit database: {exc.orig}") from None
        for ending in ("-wal", "-journal"):
            if _holds_changes(path, ending):
                raise StoreError(
                    f"cannot read {path} on storage this command may not write to: its"
                    f" {path.name}{ending} holds changes not yet in the database file; copy"
                    f" both files to a folder you can write to and give the copy"
                ) from None
        engine = _engine(path, immutable=True)
    return engine


def _text(data: bytes) -> str | Undecodable:
    try:
        return data.decode()
    except UnicodeDecodeError:
        return Undecodable(data)


@contextmanager
def as_stored(driver: Any) -> Iterator[None]:
    """While the block runs, this SQLite connection reads text that is not UTF-8 as
    ``Undecodable`` instead of failing; other text costs a call each, so not for the
    verifier's fast path. On PostgreSQL, which holds only valid text, nothing changes."""
    if not isinstance(driver, sqlite3.Connection):
        yield
        return
    driver.text_factory = _text
    try:
        yield
    finally:
        driver.text_factory = str
