"""The web sessions ended by signing out, refused until their cookies would expire.

Revision ID: 0400
Revises: 0300
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0400"
down_revision = "0300"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_web_sign_outs",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_broker_web_sign_outs_expires_at", "broker_web_sign_outs", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_broker_web_sign_outs_expires_at", table_name="broker_web_sign_outs")
    op.drop_table("broker_web_sign_outs")
