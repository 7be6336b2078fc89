"""The wired connector over PostgreSQL and MariaDB: the same answers as over SQLite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from connectors.config import load_service_config
from connectors.protocol.envelope import KeyRing, Verifier
from connectors.protocol.messages import (
    FetchPerson,
    FetchRequest,
    FetchResponse,
    MatchRequest,
    MatchResponse,
    Subject,
)
from connectors.service.wiring import build_connector
from connectors.settings import ConnectorSettings
from connectors.synth import synthesise
from tests.connectors.town_kit import AGENCIES, REFERENCE_DATE, configure_agency

pytestmark = pytest.mark.anyio


def _town_on_server(server_url: str, out: Path) -> tuple[str, dict[str, Any]]:
    """Write the town's police database to the server; return its URL and the truth."""
    url = make_url(server_url)
    name = f"{url.database}_svc_police"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    police_url = url.set(database=name).render_as_string(hide_password=False)
    result = synthesise(
        150, out, reference_date=REFERENCE_DATE, seed=11, server_urls={"police": police_url}
    )
    assert "police" in result.databases
    return police_url, json.loads((out / "truth.json").read_text(encoding="utf-8"))


def _drop(server_url: str, database_url: str) -> None:
    url = make_url(database_url)
    admin = sa.create_engine(make_url(server_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        if url.get_backend_name() == "postgresql":
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        else:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS `{url.database}`"))
    admin.dispose()


@pytest.fixture(params=["postgres", "mariadb"])
def server_police(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, dict[str, Any]]]:
    server_url: str = request.getfixturevalue(f"{request.param}_url")
    police_url, truth = _town_on_server(server_url, tmp_path / "town")
    try:
        yield police_url, truth
    finally:
        _drop(server_url, police_url)


async def test_match_and_fetch_over_a_server_database(
    server_police: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    police_url, truth = server_police
    mapping = (AGENCIES / "police.yaml").read_text(encoding="utf-8")
    mapping = mapping.replace("sqlite:///${JUNCTION_TOWN_DIR}/police.db", "${POLICE_DB_URL}")
    assert "${POLICE_DB_URL}" in mapping
    (tmp_path / "police.yaml").write_text(mapping, encoding="utf-8")
    setup = configure_agency(tmp_path, tmp_path / "town", "police")
    text = setup.config_path.read_text().replace(str(AGENCIES / "police.yaml"), "police.yaml")
    setup.config_path.write_text(text)
    built = build_connector(
        load_service_config(setup.config_path),
        ConnectorSettings(),
        environ={"POLICE_DB_URL": police_url},
    )
    ring = KeyRing()
    ring.add("police", built.service.public_key)
    verifier = Verifier(ring, "broker")
    person = next(p for p in truth["people"] if "police" in p["records"] and p["nhs_number"])
    broker = setup.broker()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=built.app), base_url="http://police"
        ) as client:
            built.agency.check()
            match = MatchRequest(
                query_id="q-server",
                requester_agency="social-care",
                purpose="child_protection_enquiry",
                subject=Subject(
                    given_name=person["given_name"],
                    family_name=person["family_name"],
                    date_of_birth=person["date_of_birth"],
                    identifiers={"nhs_number": person["nhs_number"]},
                ),
            )
            response = await client.post(
                "/v1/match", content=broker.seal(match, "police").to_bytes()
            )
            assert response.status_code == 200, response.text
            answer = verifier.open(response.content, MatchResponse).message
            assert answer.status == "matched"
            ref = answer.candidates[0].ref
            fetch = FetchRequest(
                query_id="q-server",
                exchange_id="x-server",
                requester_agency="social-care",
                requester_role="social_worker",
                purpose="child_protection_enquiry",
                legal_basis="ca1989_s47",
                decision_digest="sha256:" + "ef" * 32,
                persons=[
                    FetchPerson(ref=ref, fields=["police.callouts_12m"]),
                    FetchPerson(ref="x' OR '1'='1'; --", fields=["police.callouts_12m"]),
                ],
            )
            response = await client.post(
                "/v1/fetch", content=broker.seal(fetch, "police").to_bytes()
            )
            assert response.status_code == 200, response.text
            found, nasty = verifier.open(response.content, FetchResponse).message.persons
            assert [f.field for f in found.facts] == ["police.callouts_12m"]
            assert nasty.facts == []
            assert [w.code for w in nasty.withheld] == ["unknown-person"]
    finally:
        built.close()
