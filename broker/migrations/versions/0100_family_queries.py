"""Family queries: receipts, idempotency keys, uncertain links and link decisions.

Revision ID: 0100
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0100"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broker_family_queries",
        sa.Column("query_id", sa.String(32), primary_key=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("actor_agency", sa.String(63), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("entries", sa.JSON, nullable=False),
        sa.Column("release_entry", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_broker_family_queries_actor", "broker_family_queries", ["actor"])
    op.create_index("ix_broker_family_queries_created_at", "broker_family_queries", ["created_at"])
    op.create_table(
        "broker_idempotency",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("query_id", sa.String(32), nullable=True),
        sa.Column("sealed_answer", sa.LargeBinary, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_broker_idempotency_expires_at", "broker_idempotency", ["expires_at"])
    op.create_table(
        "broker_uncertain_links",
        sa.Column("query_id", sa.String(32), primary_key=True),
        sa.Column("link_id", sa.String(300), primary_key=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("left_key", sa.String(150), nullable=False),
        sa.Column("right_key", sa.String(150), nullable=False),
        sa.Column("probability", sa.Float, nullable=False),
    )
    op.create_table(
        "broker_link_decisions",
        sa.Column("link_id", sa.String(300), primary_key=True),
        sa.Column("left_key", sa.String(150), nullable=False),
        sa.Column("right_key", sa.String(150), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=False),
        sa.Column("decided_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_broker_link_decisions_left_key", "broker_link_decisions", ["left_key"])
    op.create_index("ix_broker_link_decisions_right_key", "broker_link_decisions", ["right_key"])


def downgrade() -> None:
    op.drop_table("broker_link_decisions")
    op.drop_table("broker_uncertain_links")
    op.drop_table("broker_idempotency")
    op.drop_table("broker_family_queries")
