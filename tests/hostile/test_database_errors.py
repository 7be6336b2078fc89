"""A database error's message never carries the values a statement was given.

Those values are names, identifiers and free text; a driver error's message, which ends
up in logs and problem details, would otherwise quote them as ``[parameters: ...]``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from audit.store import Store
from broker.db import Database
from connectors.mapping import SqlSourceSpec
from connectors.sources._sql_engine import open_engine

SECRET = "Amelia Okafor 9434765919"


def _message_of_failing_insert(engine: sa.Engine, table: str) -> str:
    with pytest.raises(sa.exc.DBAPIError) as caught, engine.begin() as connection:
        connection.execute(sa.text(f"INSERT INTO {table} VALUES (:v)"), {"v": SECRET})  # noqa: S608
    return str(caught.value)


def test_the_brokers_database_hides_statement_values(tmp_path: Path) -> None:
    database = Database.open(f"sqlite:///{tmp_path / 'broker.db'}")
    try:
        message = _message_of_failing_insert(database.engine, "agencies")
    finally:
        database.close()
    assert "INSERT INTO agencies" in message
    assert SECRET not in message


def test_the_audit_store_hides_statement_values(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'audit.db'}")
    try:
        message = _message_of_failing_insert(store.engine, "audit_entries")
    finally:
        store.close()
    assert SECRET not in message


def test_an_agency_sql_source_hides_statement_values(tmp_path: Path) -> None:
    path = tmp_path / "source.db"
    with sa.create_engine(f"sqlite:///{path}").begin() as setup:
        setup.execute(sa.text("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)"))
    engine = open_engine(SqlSourceSpec(kind="sql", url=f"sqlite:///{path}"))
    try:
        with pytest.raises(sa.exc.DBAPIError) as caught, engine.connect() as connection:
            connection.execute(sa.text("SELECT * FROM people WHERE nme = :v"), {"v": SECRET})
    finally:
        engine.dispose()
    assert "no such column" in str(caught.value)
    assert SECRET not in str(caught.value)
