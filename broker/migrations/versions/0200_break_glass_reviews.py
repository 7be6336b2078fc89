"""Oversight: the IG officers' reviews of break-glass access.

Revision ID: 0200
Revises: 0100
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0200"
down_revision = "0100"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_break_glass_reviews",
        sa.Column("entry_index", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reviewed_by", sa.String(200), nullable=False),
        sa.Column("reviewer_agency", sa.String(63), nullable=False),
        sa.Column("reviewed_at", sa.DateTime, nullable=False),
        sa.Column("review_entry", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("broker_break_glass_reviews")
