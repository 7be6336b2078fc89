"""The tables the migrations build are the tables the code declares.

A production database is only ever built and changed by the alembic migrations; the
code reads and writes it through its SQLAlchemy models. A model changed without a
migration (a new column, a dropped index, another type) would work in a test that builds
its tables from the models and fail on every deployed broker, or quietly lose an index
that the audit search needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import broker.consent.models
import broker.oversight.models
import broker.queries.models
import broker.registry.models
import broker.web.sign_outs
from audit import _tables
from audit.store import Store
from broker.db import Base, create_engine, upgrade
from tests.broker.foundation_kit import reset_postgres

_MODELS = (
    broker.consent.models,
    broker.oversight.models,
    broker.queries.models,
    broker.registry.models,
    broker.web.sign_outs,
)


def _declared() -> sa.MetaData:
    """Every table the broker and its audit log declare, in one catalogue."""
    assert all(module.Base is Base for module in _MODELS)
    declared = sa.MetaData()
    for source in (Base.metadata, _tables.metadata):
        for table in source.tables.values():
            table.to_metadata(declared)
    return declared


def _ours(name: str | None, kind: str, _parents: Any) -> bool:
    # The migrations' own bookkeeping is not part of the model.
    return not (kind == "table" and name is not None and name.endswith("_alembic_version"))


def _differences(url: str) -> list[Any]:
    Store.open(url).close()
    engine = create_engine(url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_name": _ours}
            )
            return list(compare_metadata(context, _declared()))
    finally:
        engine.dispose()


def test_the_declared_tables_cover_the_broker_and_the_audit_log() -> None:
    names = set(_declared().tables)
    assert {"audit_entries", "audit_subjects", "broker_agreements", "broker_consents"} <= names
    assert len(names) == len(Base.metadata.tables) + len(_tables.metadata.tables)


def test_sqlite_migrations_build_exactly_the_declared_tables(tmp_path: Path) -> None:
    assert _differences(f"sqlite:///{tmp_path / 'junction.db'}") == []


@pytest.mark.postgres
def test_postgres_migrations_build_exactly_the_declared_tables(postgres_url: str) -> None:
    reset_postgres(postgres_url)
    try:
        assert _differences(postgres_url) == []
    finally:
        reset_postgres(postgres_url)
