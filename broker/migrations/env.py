"""Alembic environment: runs on the connection ``broker.db`` hands over, nothing else."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table="broker_alembic_version")
context.run_migrations()
