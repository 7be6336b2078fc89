"""All SQL of the family query: receipts, idempotency keys, links."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from broker.queries.models import (
    FamilyQueryRow,
    IdempotencyRow,
    LinkDecisionRow,
    UncertainLinkRow,
)

__all__ = [
    "add",
    "add_query",
    "answer_of",
    "claim_idempotency_key",
    "delete_expired_keys",
    "link_decisions",
    "queries_of",
    "query",
    "uncertain_link",
]


def add(session: Session, row: FamilyQueryRow | UncertainLinkRow | LinkDecisionRow) -> None:
    session.add(row)


def add_query(connection: Connection, values: dict[str, Any]) -> None:
    """Insert one family query's row: a Core statement, as the family query's last write."""
    connection.execute(sa.insert(FamilyQueryRow), values)


def query(session: Session, query_id: str) -> FamilyQueryRow | None:
    return session.get(FamilyQueryRow, query_id)


def queries_of(
    session: Session, actor: str | None, *, before: datetime | None, limit: int
) -> Sequence[FamilyQueryRow]:
    statement = sa.select(FamilyQueryRow).order_by(FamilyQueryRow.created_at.desc()).limit(limit)
    if actor is not None:
        statement = statement.where(FamilyQueryRow.actor == actor)
    if before is not None:
        statement = statement.where(FamilyQueryRow.created_at < before)
    return session.scalars(statement).all()


def delete_expired_keys(session: Session, now: datetime) -> None:
    session.execute(sa.delete(IdempotencyRow).where(IdempotencyRow.expires_at < now))


def idempotency_row(session: Session, key: str) -> IdempotencyRow | None:
    return session.get(IdempotencyRow, key)


def answer_of(session: Session, query_id: str) -> IdempotencyRow | None:
    """The idempotency key under which the answer of ``query_id`` is kept, if any."""
    statement = sa.select(IdempotencyRow).where(
        IdempotencyRow.query_id == query_id, IdempotencyRow.state == "done"
    )
    return session.scalars(statement).first()


def claim_idempotency_key(session: Session, row: IdempotencyRow) -> None:
    """Insert the key; a concurrent claim of the same key fails on the primary key."""
    session.add(row)
    session.flush()


def uncertain_link(session: Session, query_id: str, link_id: str) -> UncertainLinkRow | None:
    return session.get(UncertainLinkRow, (query_id, link_id))


_LINK_DECISIONS = sa.select(
    LinkDecisionRow.__table__.c.left_key,
    LinkDecisionRow.__table__.c.right_key,
    LinkDecisionRow.__table__.c.decision,
).where(
    LinkDecisionRow.__table__.c.left_key.in_(sa.bindparam("keys", expanding=True))
    | LinkDecisionRow.__table__.c.right_key.in_(sa.bindparam("keys", expanding=True))
)


def link_decisions(connection: Connection, keys: Collection[str]) -> Sequence[Any]:
    """(left_key, right_key, decision) of every decided link touching ``keys``. On the
    family query's hot path: one prepared statement, no ORM objects."""
    if not keys:
        return []
    return connection.execute(_LINK_DECISIONS, {"keys": list(keys)}).all()


def link_decision(session: Session, link_id: str) -> LinkDecisionRow | None:
    return session.get(LinkDecisionRow, link_id)
