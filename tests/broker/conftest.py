"""Fixtures of the broker's tests: a development issuer on a real socket, and brokers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.broker.foundation_kit import IssuerServer, reset_postgres, serve_dev_issuer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def dev_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IssuerServer]:
    """A broker serving its development issuer (discovery, JWKS) over real HTTP."""
    data_dir: Path = tmp_path_factory.mktemp("issuer")
    with serve_dev_issuer(data_dir) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The broker's database: SQLite in data_dir ("") or a freshly emptied PostgreSQL."""
    if request.param == "sqlite":
        return ""
    url: str = request.getfixturevalue("postgres_url")
    reset_postgres(url)
    return url
