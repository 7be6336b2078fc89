"""The registry's tables: agencies, their connectors, and versioned sharing agreements."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, UTCDateTime

__all__ = ["AgencyRow", "AgreementRow", "ConnectorRow"]


class AgencyRow(Base):
    __tablename__ = "broker_agencies"

    id: Mapped[str] = mapped_column(sa.String(63), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    type: Mapped[str] = mapped_column(sa.String(63))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConnectorRow(Base):
    __tablename__ = "broker_connectors"

    agency_id: Mapped[str] = mapped_column(
        sa.String(63), sa.ForeignKey("broker_agencies.id"), primary_key=True
    )
    base_url: Mapped[str] = mapped_column(sa.String(500))
    public_key: Mapped[str] = mapped_column(sa.String(64))
    key_id: Mapped[str] = mapped_column(sa.String(64))
    manifest: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    manifest_fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AgreementRow(Base):
    """One version of an agreement; a change adds a row, old rows are never altered."""

    __tablename__ = "broker_agreements"

    id: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    parties: Mapped[list[str]] = mapped_column(sa.JSON)
    purposes: Mapped[list[str]] = mapped_column(sa.JSON)
    legal_bases: Mapped[list[str]] = mapped_column(sa.JSON)
    fields: Mapped[list[str]] = mapped_column(sa.JSON)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(sa.String(200))
