"""Read-only, pooled SQLAlchemy engines with a per-request time limit, per backend."""

from __future__ import annotations

import contextvars
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from connectors._urls import UNESCAPED_AT, has_unescaped_at
from connectors.errors import MappingError, SourceError, SourceTimeout
from connectors.mapping import SqlSourceSpec

__all__ = ["describe_url", "open_engine", "parse_source_url", "read_only_connection"]

# SQLite has no statement timeout; its progress handler aborts a query past this deadline.
_SQLITE_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "sqlite_deadline", default=None
)


def parse_source_url(raw: str, setting: str = "source.url") -> URL:
    """Parse a source URL; ``setting`` names where it came from in the error.

    Raises:
        MappingError: it is not an SQLAlchemy URL, or its password holds an unescaped
            '@' (the message does not repeat it, since it may hold a password).
    """
    try:
        # A port that is not a number is a ValueError, not an ArgumentError.
        url = make_url(raw)
    except (sa.exc.ArgumentError, ValueError):
        raise MappingError(
            f"{setting}: not a valid SQLAlchemy URL; expected "
            "dialect+driver://user:password@host:port/database or sqlite:///path/to/file.db"
        ) from None
    if has_unescaped_at(url):
        raise MappingError(f"{setting}: {UNESCAPED_AT}")
    return url


def describe_url(url: URL) -> str:
    """The database a URL names, without its password (for error messages)."""
    if url.get_backend_name() == "sqlite":
        return f"sqlite database {url.database}"
    return f"{url.get_backend_name()} database {url.database} at {url.host}:{url.port or ''}"


def _sqlite_engine(url: URL, spec: SqlSourceSpec) -> sa.Engine:
    path = url.database
    if not path or path == ":memory:":
        raise MappingError("source.url: an SQLite source must name a database file")

    def connect() -> sqlite3.Connection:
        # mode=ro: the connector can never write, whatever a query says.
        connection = sqlite3.connect(
            f"file:{path}?mode=ro",
            uri=True,
            check_same_thread=False,
            timeout=spec.timeout_ms / 1000,
        )

        def over_deadline() -> int:
            deadline = _SQLITE_DEADLINE.get()
            return 1 if deadline is not None and time.monotonic() > deadline else 0

        connection.set_progress_handler(over_deadline, 10_000)
        return connection

    return sa.create_engine(
        "sqlite://",
        creator=connect,
        pool_size=spec.pool_size,
        poolclass=sa.pool.QueuePool,
        hide_parameters=True,
    )


def open_engine(spec: SqlSourceSpec) -> sa.Engine:
    """A pooled engine whose sessions can only read, with ``spec.timeout_ms`` per statement.

    Raises:
        MappingError: the URL is malformed or names a driver that is not installed.
    """
    url = parse_source_url(spec.url)
    backend = url.get_backend_name()
    try:
        if backend == "sqlite":
            return _sqlite_engine(url, spec)
        connect_args: dict[str, Any] = {}
        if backend == "postgresql":
            connect_args["options"] = (
                f"-c default_transaction_read_only=on -c statement_timeout={spec.timeout_ms}"
            )
            connect_args["connect_timeout"] = max(1, spec.timeout_ms // 1000)
        elif backend in ("mysql", "mariadb"):
            seconds = max(1, spec.timeout_ms // 1000)
            connect_args.update(connect_timeout=seconds, read_timeout=seconds + 1)
        # Autocommit: each read is its own read-only transaction, which spares the BEGIN
        # and ROLLBACK round trips a request would otherwise pay on a server.
        engine = sa.create_engine(
            url,
            pool_size=spec.pool_size,
            pool_recycle=1800,
            connect_args=connect_args,
            isolation_level="AUTOCOMMIT",
            # A lookup's values are a person's name and identifiers: never in a message.
            hide_parameters=True,
        )
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise MappingError(f"source.url: cannot use {backend}: {exc}") from None
    if backend in ("mysql", "mariadb"):
        sa.event.listen(engine, "connect", _mysql_read_only(spec.timeout_ms))
    return engine


def _mysql_read_only(timeout_ms: int) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
            cursor.execute("SELECT VERSION()")
            version = str(cursor.fetchone()[0])
            if "mariadb" in version.lower():
                cursor.execute("SET SESSION max_statement_time = %s", (timeout_ms / 1000,))
            else:
                cursor.execute("SET SESSION max_execution_time = %s", (timeout_ms,))
        finally:
            cursor.close()

    return on_connect


@contextmanager
def read_only_connection(
    engine: sa.Engine, timeout_ms: int, description: str
) -> Iterator[sa.Connection]:
    """A pooled connection for one request; driver errors become ``SourceError``.

    Raises:
        SourceTimeout: a query ran past the time limit.
        SourceError: the database could not be reached or refused the query.
    """
    token = _SQLITE_DEADLINE.set(time.monotonic() + timeout_ms / 1000)
    try:
        with engine.connect() as connection:
            yield connection
            connection.rollback()
    except sa.exc.OperationalError as exc:
        message = str(exc.orig).lower()
        if any(
            word in message
            for word in (
                "interrupted",
                "timeout",
                "max_statement_time",
                "canceling statement",
                "execution time",
            )
        ):
            raise SourceTimeout(f"the source query took longer than {timeout_ms} ms") from None
        raise SourceError(f"{description}: {str(exc.orig).splitlines()[0]}") from None
    except sa.exc.DBAPIError as exc:
        raise SourceError(f"{description}: {str(exc.orig).splitlines()[0]}") from None
    finally:
        _SQLITE_DEADLINE.reset(token)
