"""Alembic migrations of the audit log's schema, run by ``audit.store.Store.open``."""
