"""The demo region for hostile-input tests, driven through schemathesis's ASGI client.

Schemathesis runs an application (and its lifespan) on one event loop of its own, so the
region is built here without entering the lifespan: the first request starts it, and
``close`` stops it. Connectors are the demo town's real ones (real mapping, SQLite
source, Rego local policy, signed local audit log), reached by the broker through a
transport routing each registered URL to its app.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI
from schemathesis.python import asgi

from audit.log import AuditLog
from audit.search import SearchQuery
from broker.app import create_app
from broker.demo.layout import AGENCY_FILES, AUDIT_ORIGIN, DemoLayout, prepare
from broker.foundation import Foundation
from broker.identity.principal import Role
from broker.settings import BrokerSettings
from connectors.config import load_service_config
from connectors.service.wiring import BuiltConnector, build_connector
from connectors.settings import ConnectorSettings
from tests.broker.town_kit import LateTransport, RoutingTransport

ADMIN_AGENCY = "broker"
_ROLES = re.compile(r"Roles: ((?:`\w+`(?:, )?)+)\.")


@dataclass
class HostileRegion:
    layout: DemoLayout
    truth: dict[str, Any]
    connectors: dict[str, BuiltConnector]
    transport: RoutingTransport
    app: FastAPI
    client: asgi.ASGIClient

    @property
    def foundation(self) -> Foundation:
        foundation: Foundation = self.app.state.foundation
        return foundation

    def token(self, role: Role, *, agency: str = "council", job_role: str | None = None) -> str:
        issuer = self.foundation.dev_issuer
        assert issuer is not None
        if role is Role.CASEWORKER and job_role is None:
            job_role = "social_worker"
        return issuer.mint(role=role, agency=agency, name="Hostile Test", job_role=job_role)

    def headers(self, role: Role = Role.CASEWORKER, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, **claims)}"}

    def netloc(self, agency: str) -> str:
        return f"127.0.0.1:{self.layout.connector_port(agency)}"

    def entries(self, **filters: Any) -> list[Any]:
        """The broker's audit entries matching ``filters``, oldest first."""
        return read_entries(self.foundation.audit, **filters)

    def connector_entries(self, agency: str, **filters: Any) -> list[Any]:
        """The agency connector's own (local) audit entries, oldest first."""
        return read_entries(self.connectors[agency].audit.log, **filters)

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        asgi.shutdown_lifespans()
        for connector in self.connectors.values():
            connector.close()


def read_entries(log: AuditLog, **filters: Any) -> list[Any]:
    found: list[Any] = []
    before = None
    while True:
        page = log.search(SearchQuery(before=before, limit=500, **filters))
        found.extend(page.entries)
        if page.next_before is None:
            return sorted(found, key=lambda entry: entry.index)
        before = page.next_before


def roles_of(description: str) -> list[Role]:
    """The roles an operation's description names (``Roles: `a`, `b`.``)."""
    found = _ROLES.search(description or "")
    if found is None:
        return []
    return [Role(name) for name in re.findall(r"`(\w+)`", found.group(1))]


def _seed(region: HostileRegion) -> None:
    admin = region.headers(Role.ADMIN, agency=ADMIN_AGENCY)
    registry = yaml.safe_load(region.layout.registry_file.read_text())
    for agency in registry["agencies"]:
        connector = agency.pop("connector", None)
        answer = region.client.post("/v1/agencies", json=agency, headers=admin)
        assert answer.status_code == 201, answer.text
        if connector is not None:
            path = f"/v1/agencies/{agency['id']}/connector"
            answer = region.client.put(path, json=connector, headers=admin)
            assert answer.status_code == 200, answer.text
    for agreement in registry["agreements"]:
        answer = region.client.post("/v1/agreements", json=agreement, headers=admin)
        assert answer.status_code == 201, answer.text


def open_region(root: Path, people: int = 400) -> HostileRegion:
    """Build the region, start the broker (through its first request) and seed it."""
    layout = prepare(root, people, seed=11)
    truth = json.loads((layout.town / "truth.json").read_text())
    environ = layout.connector_environ()
    transport = RoutingTransport()
    built: dict[str, BuiltConnector] = {}
    for agency in AGENCY_FILES:
        config = load_service_config(layout.agency_config(agency))
        built[agency] = build_connector(config, ConnectorSettings(), environ=environ)
        transport.add(f"127.0.0.1:{layout.connector_port(agency)}", built[agency].app)
    oidc = LateTransport()
    settings = BrokerSettings(
        data_dir=layout.broker_data,
        audit_origin=AUDIT_ORIGIN,
        signing_key=layout.keys / "broker.key",
        public_url="http://broker.test",
        agency_timeout_seconds=5.0,
        query_deadline_seconds=10.0,
    )
    app = create_app(settings, connector_transport=transport, oidc_transport=oidc)
    oidc.app = app
    # Entering the client starts the application's lifespan on schemathesis's event loop.
    client = asgi.get_client(app).__enter__()
    region = HostileRegion(layout, truth, built, transport, app, client)
    try:
        _seed(region)
    except BaseException:
        region.close()
        raise
    return region
