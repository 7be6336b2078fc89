"""Fields a person has asked not to be shared, recorded with a consent statement.

Revision ID: 0300
Revises: 0200
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0300"
down_revision = "0200"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("broker_consents") as batch:
        batch.add_column(
            sa.Column("restricted_fields", sa.JSON, nullable=False, server_default="[]")
        )


def downgrade() -> None:
    with op.batch_alter_table("broker_consents") as batch:
        batch.drop_column("restricted_fields")
