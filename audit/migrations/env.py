"""Alembic environment: runs on the connection ``audit.store`` hands over, nothing else."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table="audit_alembic_version")
context.run_migrations()
