"""The connector's own audit log: every exchange it served, refused or rejected.

Events go into an ``audit.AuditLog`` (the same Merkle log the broker keeps) whose
checkpoints are signed with the agency's own key, so the agency can prove to anyone
what it released, and ``junction audit verify`` checks it offline. Local references are
recorded as keyed HMACs (``audit.entry.subject_reference``) under a key derived from the
agency's private key, so "what did we release about this person" is a lookup while the
log itself names nobody.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from sqlalchemy.engine import URL, make_url

from audit.checkpoint import NoteSigner
from audit.entry import Decision, Entry, Kind, subject_reference
from audit.errors import AuditError
from audit.log import AuditLog
from connectors._urls import UNESCAPED_AT, has_unescaped_at
from connectors.errors import ConfigError, LocalAuditUnavailable
from connectors.protocol.keys import KeyPair
from connectors.service.ports import AuditEvent, AuditKind

__all__ = ["AuditLogRecorder", "check_audit_database", "local_log_origin", "subject_key_for"]

_WHERE = "audit.database_url"
# The table where an audit log records its origin and key (audit's own schema).
_META_TABLE = "audit_meta"

_KINDS = {
    AuditKind.MATCH: Kind.MATCH,
    AuditKind.FETCH: Kind.FETCH,
    AuditKind.REFUSAL: Kind.REFUSAL,
    # A rejected envelope is the connector refusing to deal at all.
    AuditKind.REJECTION: Kind.REFUSAL,
}


def local_log_origin(agency_id: str) -> str:
    """The origin line (and key name) of an agency's local log checkpoints."""
    return f"junction.connector/{agency_id}"


def subject_key_for(key: KeyPair) -> bytes:
    """The HMAC key for local references, derived from (and as secret as) the agency key."""
    raw = key.private_key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return hmac.new(raw, b"junction local audit subjects", hashlib.sha256).digest()


def _shown(url: str) -> str:
    """The URL for a message: without its password, or not at all if it does not parse."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return "(not a URL)"


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _creatable(path: Path, made_for_it: Path | None) -> None:
    """Raise ``ConfigError`` unless an SQLite file can be created at ``path``.

    ``made_for_it`` is a folder the connector creates before opening the log (its
    ``state_dir``); any other folder must already exist.
    """
    folder = path.parent
    if not folder.is_dir() and (made_for_it is None or folder != made_for_it):
        state = "is not a folder" if folder.exists() else "does not exist"
        raise ConfigError(f"{_WHERE}: cannot create {path}: {folder} {state}")
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{_WHERE}: cannot create {path}: {existing} is not a writable folder")


def _audit_engine(url: URL, made_for_it: Path | None) -> sa.Engine | None:
    """A read-only engine on the log's database; None for an SQLite file not made yet."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:"):
            raise ConfigError(
                f"{_WHERE}: the local audit log needs a file, not an in-memory database"
            )
        path = Path(database)
        if not path.exists():
            _creatable(path, made_for_it)
            return None
        if not os.access(path, os.R_OK | os.W_OK):
            raise ConfigError(f"{_WHERE}: {path} is not readable and writable by this user")
        return sa.create_engine(
            "sqlite://",
            creator=lambda: sqlite3.connect(f"file:{path}?mode=ro", uri=True),
            poolclass=sa.pool.NullPool,
        )
    if backend != "postgresql":
        raise ConfigError(
            f"{_WHERE}: the local audit log runs on SQLite or PostgreSQL, not {backend}"
        )
    try:
        return sa.create_engine(
            url, connect_args={"connect_timeout": 5}, poolclass=sa.pool.NullPool
        )
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"{_WHERE}: cannot use {url.drivername}: {_first_line(exc)}") from None


def check_audit_database(
    url: str, key: KeyPair, *, agency_id: str, state_dir: Path | None = None
) -> None:
    """Check, without writing to it, that ``AuditLogRecorder.open`` can use ``url``.

    The database must be reachable (or, for SQLite, creatable, in an existing folder or
    in ``state_dir``, which the connector creates) and hold either no log yet or this
    agency's log signed by ``key``. Raises ``ConfigError`` naming the problem.
    """
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise ConfigError(
            f"{_WHERE}: not a valid SQLAlchemy URL; expected sqlite:///path/to/audit.db "
            "or postgresql+psycopg://user@host/database"
        ) from None
    if has_unescaped_at(parsed):
        raise ConfigError(f"{_WHERE}: {UNESCAPED_AT}")
    engine = _audit_engine(parsed, state_dir)
    if engine is None:
        return
    shown = parsed.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(_META_TABLE):
                return
            rows = connection.execute(sa.text(f"SELECT key, value FROM {_META_TABLE}"))  # noqa: S608 - our table name
            stored = {str(k): str(v) for k, v in rows}
    except sa.exc.SQLAlchemyError as exc:
        raise ConfigError(f"{_WHERE}: cannot open {shown}: {_first_line(exc)}") from None
    finally:
        engine.dispose()
    origin = local_log_origin(agency_id)
    if stored.get("origin", origin) != origin:
        raise ConfigError(
            f"{_WHERE}: {shown} holds the log of {stored['origin']!r}, not {origin!r}"
        )
    verifier_key = NoteSigner(origin, key.private_key).verifier().verifier_key()
    if stored.get("log_key", verifier_key) != verifier_key:
        raise ConfigError(
            f"{_WHERE}: {shown} holds a log signed by another key than signing_key; "
            "use the key it was started with, or a new database"
        )


def _decision(event: AuditEvent) -> Decision:
    if event.decision in ("refused", "rejected"):
        return Decision.DENY
    if any(reason.startswith(("field:", "person:")) for reason in event.reasons):
        return Decision.PARTIAL
    return Decision.ALLOW


class AuditLogRecorder:
    """Records ``AuditEvent``s in an ``AuditLog``; implements ``LocalAudit``."""

    def __init__(self, log: AuditLog, *, agency_id: str, subject_key: bytes) -> None:
        self.log = log
        self._agency_id = agency_id
        self._subject_key = subject_key

    @classmethod
    def open(
        cls, url: str, key: KeyPair, *, agency_id: str, checkpoint_interval: float = 0.2
    ) -> AuditLogRecorder:
        """Open (creating) the local log at ``url``, signed with the agency ``key``.

        Raises ``ConfigError`` if the database cannot be opened or holds another log.
        """
        origin = local_log_origin(agency_id)
        try:
            log = AuditLog.open(
                url,
                NoteSigner(origin, key.private_key),
                origin=origin,
                checkpoint_interval=checkpoint_interval,
            )
        except AuditError as exc:
            raise ConfigError(f"the local audit log at {_shown(url)}: {_first_line(exc)}") from None
        return cls(log, agency_id=agency_id, subject_key=subject_key_for(key))

    def entry_for(self, event: AuditEvent) -> Entry:
        """The audit entry an event becomes. Holds no personal data."""
        reasons = list(event.reasons)
        if event.decision_digest is not None:
            reasons.append(f"broker-decision:{event.decision_digest}")
        return Entry(
            kind=_KINDS[event.kind],
            actor=event.counterparty,
            actor_agency=event.requester_agency,
            counterparty_agency=self._agency_id,
            purpose=event.purpose,
            legal_basis=event.legal_basis,
            decision=_decision(event),
            reasons=tuple(reasons),
            fields_released=event.fields_released,
            subjects=tuple(
                subject_reference(self._subject_key, "local_ref", ref)
                for ref in dict.fromkeys(event.refs)
            ),
            request_digest=event.request_digest,
            response_digest=event.response_digest,
            policy_digest=event.policy_digest,
            query_id=event.query_id,
            exchange_id=event.exchange_id,
            time=event.at,
        )

    def record(self, event: AuditEvent) -> int:
        """Append the event; return its index once durable. Raises ``LocalAuditUnavailable``."""
        try:
            return self.log.append(self.entry_for(event))
        except AuditError as exc:
            raise LocalAuditUnavailable(
                f"the local audit log did not record the exchange ({exc}); nothing was sent"
            ) from None

    def subject(self, ref: str) -> str:
        """The reference under which ``ref`` appears in this log's entries."""
        return subject_reference(self._subject_key, "local_ref", ref)

    def close(self) -> None:
        self.log.close()
