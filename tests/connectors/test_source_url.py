"""A deployment points a connector at its own database without editing the mapping."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from broker.demo.layout import prepare
from connectors.config import load_service_config
from connectors.errors import ConnectorError
from connectors.service.wiring import build_connector, check_connector
from connectors.settings import ConnectorSettings
from connectors.synth import synthesise

pytestmark = pytest.mark.postgres


def test_the_source_url_setting_replaces_the_mappings_database(
    tmp_path: Path, postgres_url: str
) -> None:
    layout = prepare(tmp_path / "demo", 200, seed=3)
    # The same town written only to PostgreSQL; the mapping's SQLite path does not exist.
    synthesise(
        200,
        tmp_path / "server",
        seed=3,
        reference_date=dt.date(2026, 11, 1),
        server_urls={"education": postgres_url},
    )
    config = load_service_config(layout.agency_config("education"))
    nowhere = {"JUNCTION_TOWN_DIR": str(tmp_path / "missing")}
    with pytest.raises(ConnectorError):
        check_connector(config, environ=nowhere)
    mapping = check_connector(config, environ=nowhere, source_url=postgres_url)
    assert mapping.source.kind == "sql"
    assert mapping.source.url == postgres_url
    built = build_connector(config, ConnectorSettings(source_url=postgres_url), environ=nowhere)
    try:
        built.agency.check()
    finally:
        built.close()
