"""The log's tables, as SQLAlchemy Core objects (the alembic migrations create them).

Private values and subject references are SQLite ``WITHOUT ROWID`` tables, stored in
key order: the verifier reads a chunk's private values as one sequential range.
Tree nodes are stored by a single integer id, ``level << 48 | index``, for levels 1 and
up; level 0 (leaf hashes) lives in ``audit_entries``. The search columns of
``audit_entries`` copy fields of the leaf for indexing only: every read returns what the
leaf itself says.
"""

from __future__ import annotations

import sqlalchemy as sa

# On SQLite only "INTEGER PRIMARY KEY" makes the key the rowid: entries are then stored
# in index order, and a full scan is a sequential read instead of an index walk.
_INDEX = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

entries = sa.Table(
    "audit_entries",
    metadata,
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

# The search columns' indexes, as the first migration creates them.
for _column in ("time_us", "actor", "actor_agency", "counterparty_agency", "purpose", "query_id"):
    sa.Index(f"ix_audit_entries_{_column}", entries.c[_column])

subjects = sa.Table(
    "audit_subjects",
    metadata,
    sa.Column("ref", sa.String(64), primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
)

openings = sa.Table(
    "audit_openings",
    metadata,
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("salt", sa.LargeBinary(32), nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sqlite_with_rowid=False,
)

erasures = sa.Table(
    "audit_erasures",
    metadata,
    sa.Column("idx", _INDEX, primary_key=True, autoincrement=False),
    sa.Column("erased_at_us", sa.BigInteger, nullable=False),
    sa.Column("erased_by", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("erasure_idx", sa.BigInteger, nullable=False),
)

nodes = sa.Table(
    "audit_nodes",
    metadata,
    sa.Column("id", _INDEX, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)

checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("size", _INDEX, primary_key=True, autoincrement=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("signed_at_us", sa.BigInteger, nullable=False),
)

meta = sa.Table(
    "audit_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

NODE_SHIFT = 48


def node_key(level: int, index: int) -> int:
    return level << NODE_SHIFT | index
