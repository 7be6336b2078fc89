"""The idempotency keys consent statements were recorded under, kept for a day.

Revision ID: 0500
Revises: 0400
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0500"
down_revision = "0400"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_consent_idempotency",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("consent_id", sa.String(36), nullable=True),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.create_index(
        "ix_broker_consent_idempotency_expires_at", "broker_consent_idempotency", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_index(
        "ix_broker_consent_idempotency_expires_at", table_name="broker_consent_idempotency"
    )
    op.drop_table("broker_consent_idempotency")
