"""All SQL of oversight: the break-glass review table."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from broker.oversight.models import BreakGlassReviewRow

__all__ = ["add_review", "review", "reviews_of"]


def add_review(session: Session, row: BreakGlassReviewRow) -> None:
    session.add(row)


def review(session: Session, entry_index: int) -> BreakGlassReviewRow | None:
    return session.get(BreakGlassReviewRow, entry_index)


def reviews_of(session: Session, indexes: Collection[int]) -> Sequence[BreakGlassReviewRow]:
    if not indexes:
        return []
    statement = sa.select(BreakGlassReviewRow).where(
        BreakGlassReviewRow.entry_index.in_(list(indexes))
    )
    return session.scalars(statement).all()
