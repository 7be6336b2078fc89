"""The consent register's tables. States are appended, never updated in place."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, UTCDateTime

__all__ = ["ConsentIdempotencyRow", "ConsentRow", "ConsentStateRow", "ConsentSubjectRow"]


class ConsentRow(Base):
    __tablename__ = "broker_consents"

    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    purpose: Mapped[str] = mapped_column(sa.String(63), index=True)
    scope_all: Mapped[bool] = mapped_column(sa.Boolean)
    scope: Mapped[list[str]] = mapped_column(sa.JSON)
    given_by: Mapped[str] = mapped_column(sa.String(16))
    channel: Mapped[str] = mapped_column(sa.String(16))
    evidence_reference: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    label: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
    recorded_by: Mapped[str] = mapped_column(sa.String(200))
    recorded_by_agency: Mapped[str] = mapped_column(sa.String(63))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    restricted_fields: Mapped[list[str]] = mapped_column(sa.JSON, default=list)


class ConsentSubjectRow(Base):
    """One keyed subject reference that identifies the person a consent is about."""

    __tablename__ = "broker_consent_subjects"

    consent_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("broker_consents.id"), primary_key=True
    )
    person_key: Mapped[str] = mapped_column(sa.String(64), primary_key=True, index=True)


class ConsentStateRow(Base):
    __tablename__ = "broker_consent_states"

    consent_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("broker_consents.id"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    state: Mapped[str] = mapped_column(sa.String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    by: Mapped[str] = mapped_column(sa.String(200))
    note: Mapped[str | None] = mapped_column(sa.Text, nullable=True)


class ConsentIdempotencyRow(Base):
    """An idempotency key a statement was recorded under, for a while: the same statement
    sent again with it is answered with that consent instead of recording another.

    ``key`` is a hash of the caller and their key; ``request_hash`` one of the statement,
    with the person named by subject references only.
    """

    __tablename__ = "broker_consent_idempotency"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    request_hash: Mapped[str] = mapped_column(sa.String(64))
    # None while the first statement sent with the key is being recorded.
    consent_id: Mapped[str | None] = mapped_column(sa.String(36), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
