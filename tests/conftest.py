"""Fixtures shared by the whole suite: real PostgreSQL and MariaDB databases.

Each test session gets its own freshly created database on each server and drops it at
the end. A server that cannot be reached fails the tests that need it: a skipped
database test would hide exactly what it is there to catch.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url


def _server_url(variable: str) -> str:
    url = os.environ.get(variable)
    if not url:
        pytest.fail(
            f"{variable} is not set; run the suite with scripts/test, which points it at "
            "the local server",
            pytrace=False,
        )
    return url


def _fresh_database(variable: str) -> Iterator[str]:
    admin_url = make_url(_server_url(variable))
    name = f"junction_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"cannot reach the database at {variable}: {exc.orig}", pytrace=False)
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            if admin_url.get_backend_name() == "postgresql":
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a new, empty PostgreSQL database for this test session."""
    yield from _fresh_database("JUNCTION_TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """URL of a new, empty MariaDB database for this test session."""
    yield from _fresh_database("JUNCTION_TEST_MARIADB_URL")
