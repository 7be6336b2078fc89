"""All of the registry's SQL. Functions take the caller's session; none commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from broker.registry.models import AgencyRow, AgreementRow, ConnectorRow

__all__ = [
    "add",
    "agencies",
    "agency",
    "agreement_row_count",
    "agreement_versions",
    "all_agreement_versions",
    "connector",
    "connector_rows",
    "connectors",
    "latest_agreements",
]


def add(session: Session, row: AgencyRow | ConnectorRow | AgreementRow) -> None:
    """Stage a new row; the session's transaction writes it."""
    session.add(row)


def agencies(session: Session) -> Sequence[AgencyRow]:
    return session.scalars(sa.select(AgencyRow).order_by(AgencyRow.id)).all()


def agency(session: Session, agency_id: str) -> AgencyRow | None:
    return session.get(AgencyRow, agency_id)


def agency_type(connection: Connection, agency_id: str) -> str | None:
    """The agency's type, or None if it is not registered (a Core read for the hot path)."""
    statement = sa.select(AgencyRow.type).where(AgencyRow.id == agency_id)
    return connection.execute(statement).scalar_one_or_none()


def connector(session: Session, agency_id: str) -> ConnectorRow | None:
    return session.get(ConnectorRow, agency_id)


_C, _A = ConnectorRow.__table__, AgencyRow.__table__
_CONNECTOR_ROWS = (
    sa.select(
        _A.c.id.label("agency_id"),
        _A.c.name.label("agency_name"),
        _A.c.type.label("agency_type"),
        _C.c.base_url,
        _C.c.public_key,
        _C.c.key_id,
        _C.c.manifest_fetched_at,
        _C.c.manifest,
    )
    .join(_A, _A.c.id == _C.c.agency_id)
    .order_by(_C.c.agency_id)
)


def connector_rows(connection: Connection) -> Sequence[Any]:
    """Every connector with its agency, as plain rows: the family query's hot path."""
    return connection.execute(_CONNECTOR_ROWS).all()


def connectors(session: Session) -> Sequence[tuple[ConnectorRow, AgencyRow]]:
    query = (
        sa.select(ConnectorRow, AgencyRow)
        .join(AgencyRow, AgencyRow.id == ConnectorRow.agency_id)
        .order_by(ConnectorRow.agency_id)
    )
    return [(row[0], row[1]) for row in session.execute(query)]


def agreement_versions(session: Session, agreement_id: str) -> Sequence[AgreementRow]:
    """Every version of one agreement, oldest first."""
    query = (
        sa.select(AgreementRow)
        .where(AgreementRow.id == agreement_id)
        .order_by(AgreementRow.version)
    )
    return session.scalars(query).all()


_COUNT_AGREEMENTS = sa.select(sa.func.count()).select_from(AgreementRow.__table__)


def agreement_row_count(connection: Connection) -> int:
    """How many agreement versions are stored. Versions are only ever added, so this
    number changes with every change to any agreement."""
    return int(connection.execute(_COUNT_AGREEMENTS).scalar_one())


def all_agreement_versions(session: Session) -> Sequence[AgreementRow]:
    """Every version of every agreement, by id then version."""
    return session.scalars(
        sa.select(AgreementRow).order_by(AgreementRow.id, AgreementRow.version)
    ).all()


def latest_agreements(session: Session, at: datetime | None = None) -> Sequence[AgreementRow]:
    """The newest version of each agreement (as it stood at ``at``, if given)."""
    newest = sa.select(AgreementRow.id, sa.func.max(AgreementRow.version).label("version"))
    if at is not None:
        newest = newest.where(AgreementRow.created_at <= at)
    latest = newest.group_by(AgreementRow.id).subquery()
    query = (
        sa.select(AgreementRow)
        .join(
            latest,
            sa.and_(AgreementRow.id == latest.c.id, AgreementRow.version == latest.c.version),
        )
        .order_by(AgreementRow.id)
    )
    return session.scalars(query).all()
