"""The first audit log schema: entries, openings, erasures, subjects, nodes, checkpoints.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# On SQLite only "INTEGER PRIMARY KEY" makes the key the rowid: entries are then stored
# in index order, and a full scan is a sequential read instead of an index walk.
_INDEX = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("idx", _INDEX, primary_key=True, autoincrement=False),
        sa.Column("leaf", sa.LargeBinary, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("time_us", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("actor_agency", sa.String(200)),
        sa.Column("counterparty_agency", sa.String(200)),
        sa.Column("purpose", sa.String(200)),
        sa.Column("decision", sa.String(16)),
        sa.Column("query_id", sa.String(200)),
    )
    for column in ("time_us", "actor", "actor_agency", "counterparty_agency", "purpose"):
        op.create_index(f"ix_audit_entries_{column}", "audit_entries", [column])
    op.create_index("ix_audit_entries_query_id", "audit_entries", ["query_id"])
    op.create_table(
        "audit_subjects",
        sa.Column("ref", sa.String(64), primary_key=True),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "audit_openings",
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("salt", sa.LargeBinary(32), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "audit_erasures",
        sa.Column("idx", _INDEX, primary_key=True, autoincrement=False),
        sa.Column("erased_at_us", sa.BigInteger, nullable=False),
        sa.Column("erased_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("erasure_idx", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "audit_nodes",
        sa.Column("id", _INDEX, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", _INDEX, primary_key=True, autoincrement=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("signed_at_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "audit_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
