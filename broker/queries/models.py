"""The family query's own tables. None holds agency data in clear.

``broker_family_queries`` is the caseworker's list of receipts (who asked, for what,
which audit entries). ``broker_idempotency`` remembers a request's key for a short while
so a retried request is answered again without running (and auditing) it twice; the
answer it keeps is encrypted and deleted when the key expires. ``broker_uncertain_links``
and ``broker_link_decisions`` hold pairs of opaque agency references a caseworker was
asked about, and what they decided.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, UTCDateTime

__all__ = ["FamilyQueryRow", "IdempotencyRow", "LinkDecisionRow", "UncertainLinkRow"]


class FamilyQueryRow(Base):
    __tablename__ = "broker_family_queries"

    query_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    actor: Mapped[str] = mapped_column(sa.String(200), index=True)
    actor_agency: Mapped[str] = mapped_column(sa.String(63))
    purpose: Mapped[str] = mapped_column(sa.String(64))
    status: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    entries: Mapped[list[int]] = mapped_column(sa.JSON)
    release_entry: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)


class IdempotencyRow(Base):
    __tablename__ = "broker_idempotency"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[str] = mapped_column(sa.String(16))
    query_id: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    sealed_answer: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class UncertainLinkRow(Base):
    __tablename__ = "broker_uncertain_links"

    query_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    link_id: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    actor: Mapped[str] = mapped_column(sa.String(200))
    left_key: Mapped[str] = mapped_column(sa.String(150))
    right_key: Mapped[str] = mapped_column(sa.String(150))
    probability: Mapped[float] = mapped_column(sa.Float)


class LinkDecisionRow(Base):
    __tablename__ = "broker_link_decisions"

    link_id: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    left_key: Mapped[str] = mapped_column(sa.String(150), index=True)
    right_key: Mapped[str] = mapped_column(sa.String(150), index=True)
    decision: Mapped[str] = mapped_column(sa.String(16))
    decided_by: Mapped[str] = mapped_column(sa.String(200))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
