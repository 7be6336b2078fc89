"""Web sessions ended by signing out.

A session lives in its cookie, so signing out cannot take the cookie back from wherever
a copy of it went (a shared computer's browser profile, a proxy's log). The broker keeps
the ids of the sessions that were signed out instead, each until the time its cookie
would have been refused anyway, and refuses a cookie whose session id is among them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, Database, UTCDateTime
from broker.errors import Conflict

__all__ = ["SignOutRow", "SignOuts"]


class SignOutRow(Base):
    __tablename__ = "broker_web_sign_outs"

    session_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class SignOuts:
    """The sessions that were signed out and whose cookies would still be taken."""

    def __init__(self, db: Database, clock: Callable[[], datetime] | None = None) -> None:
        self._db = db
        self._clock = clock or (lambda: datetime.now(UTC))

    def end(self, session_id: str, until: datetime) -> None:
        """Refuse ``session_id`` from now until ``until``; forget those past their time.

        Raises ``StoreUnavailable`` if the database fails: the caller must not then say
        the session has ended.
        """
        try:
            with self._db.write() as connection:
                connection.execute(
                    sa.delete(SignOutRow).where(SignOutRow.expires_at < self._clock())
                )
                connection.execute(sa.delete(SignOutRow).where(SignOutRow.session_id == session_id))
                connection.execute(
                    sa.insert(SignOutRow).values(session_id=session_id, expires_at=until)
                )
        except Conflict:
            pass  # signed out twice at once: the other sign-out recorded it

    def ended(self, session_id: str) -> bool:
        """Whether ``session_id`` was signed out. Raises ``StoreUnavailable``."""
        with self._db.read() as connection:
            found = connection.execute(
                sa.select(SignOutRow.session_id).where(SignOutRow.session_id == session_id)
            ).first()
        return found is not None
