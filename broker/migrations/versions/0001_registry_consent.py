"""The broker's first schema: registry (agencies, connectors, agreements) and consent.

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


def upgrade() -> None:
    op.create_table(
        "broker_agencies",
        sa.Column("id", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("type", sa.String(63), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "broker_connectors",
        sa.Column(
            "agency_id", sa.String(63), sa.ForeignKey("broker_agencies.id"), primary_key=True
        ),
        sa.Column("base_url", sa.String(500), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("manifest", sa.JSON, nullable=False),
        sa.Column("manifest_fetched_at", sa.DateTime, nullable=False),
        sa.Column("registered_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "broker_agreements",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("parties", sa.JSON, nullable=False),
        sa.Column("purposes", sa.JSON, nullable=False),
        sa.Column("legal_bases", sa.JSON, nullable=False),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.Column("valid_from", sa.DateTime, nullable=False),
        sa.Column("valid_to", sa.DateTime, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "broker_consents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("purpose", sa.String(63), nullable=False),
        sa.Column("scope_all", sa.Boolean, nullable=False),
        sa.Column("scope", sa.JSON, nullable=False),
        sa.Column("given_by", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("evidence_reference", sa.String(200), nullable=True),
        sa.Column("label", sa.String(100), nullable=True),
        sa.Column("recorded_by", sa.String(200), nullable=False),
        sa.Column("recorded_by_agency", sa.String(63), nullable=False),
        sa.Column("recorded_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_broker_consents_purpose", "broker_consents", ["purpose"])
    op.create_table(
        "broker_consent_subjects",
        sa.Column(
            "consent_id", sa.String(36), sa.ForeignKey("broker_consents.id"), primary_key=True
        ),
        sa.Column("person_key", sa.String(64), primary_key=True),
    )
    op.create_index(
        "ix_broker_consent_subjects_person_key", "broker_consent_subjects", ["person_key"]
    )
    op.create_table(
        "broker_consent_states",
        sa.Column(
            "consent_id", sa.String(36), sa.ForeignKey("broker_consents.id"), primary_key=True
        ),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
    )
