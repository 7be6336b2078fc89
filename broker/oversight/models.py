"""The oversight tables: which break-glass entries an IG officer has reviewed.

The review's note lives only in the audit log (as a private value of the
``access_review`` entry); this table holds what the review queue needs to know.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, UTCDateTime

__all__ = ["BreakGlassReviewRow"]


class BreakGlassReviewRow(Base):
    __tablename__ = "broker_break_glass_reviews"

    entry_index: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    outcome: Mapped[str] = mapped_column(sa.String(16))
    reviewed_by: Mapped[str] = mapped_column(sa.String(200))
    reviewer_agency: Mapped[str] = mapped_column(sa.String(63))
    reviewed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    review_entry: Mapped[int] = mapped_column(sa.BigInteger)
