"""A whole region in one process: the demo town's six real connectors and a real broker.

Each connector is built from its ``agency.yaml`` exactly as ``junction connector serve``
builds it (real mapping, SQLite source, Rego local policy, signed local audit log); the
broker reaches them through a transport that routes each connector's registered URL to
its ASGI app. The broker's development issuer signs the caseworkers' tokens, and the
broker fetches its JWKS from itself.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from audit.search import SearchQuery
from broker.app import create_app
from broker.demo.layout import AGENCY_FILES, AUDIT_ORIGIN, DemoLayout, prepare
from broker.foundation import Foundation
from broker.identity.principal import Principal, Role
from broker.registry.seed import load_registry_file
from broker.settings import BrokerSettings
from connectors.config import load_service_config
from connectors.service.wiring import BuiltConnector, build_connector
from connectors.settings import ConnectorSettings

ADMIN = Principal(subject="test:admin", name="Admin", role=Role.ADMIN, agency="broker")


class RoutingTransport(httpx.AsyncBaseTransport):
    """Sends each request to the ASGI app registered for its host:port.

    A connector can be taken down (connection refused), made to hang, or replaced by a
    handler, so tests can break agencies on purpose.
    """

    def __init__(self) -> None:
        self.routes: dict[str, httpx.AsyncBaseTransport] = {}
        self.down: set[str] = set()

    def add(self, netloc: str, app: FastAPI) -> None:
        self.routes[netloc] = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        netloc = f"{request.url.host}:{request.url.port}"
        route = self.routes.get(netloc)
        if route is None or netloc in self.down:
            raise httpx.ConnectError(f"connection refused by {netloc}", request=request)
        return await route.handle_async_request(request)


class LateTransport(httpx.AsyncBaseTransport):
    """An ASGI transport to an app that is created after the transport."""

    app: FastAPI | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert self.app is not None
        return await httpx.ASGITransport(app=self.app).handle_async_request(request)


@dataclass
class Region:
    layout: DemoLayout
    truth: dict[str, Any]
    connectors: dict[str, BuiltConnector]
    transport: RoutingTransport
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def foundation(self) -> Foundation:
        foundation: Foundation = self.app.state.foundation
        return foundation

    def netloc(self, agency: str) -> str:
        return f"127.0.0.1:{self.layout.connector_port(agency)}"

    def headers(
        self,
        role: Role = Role.CASEWORKER,
        *,
        job_role: str | None = "social_worker",
        agency: str = "council",
        name: str = "Sam Caseworker",
    ) -> dict[str, str]:
        issuer = self.foundation.dev_issuer
        assert issuer is not None
        token = issuer.mint(role=role, agency=agency, name=name, job_role=job_role)
        return {"Authorization": f"Bearer {token}"}

    def entries(self, **filters: Any) -> list[Any]:
        """Every broker audit entry matching ``filters``, oldest first."""
        found: list[Any] = []
        before = None
        while True:
            page = self.foundation.audit.search(SearchQuery(before=before, limit=500, **filters))
            found.extend(page.entries)
            if page.next_before is None:
                return sorted(found, key=lambda e: e.index)
            before = page.next_before


@contextmanager
def town(root: Path, people: int = 600) -> Iterator[tuple[DemoLayout, dict[str, Any]]]:
    layout = prepare(root, people, seed=7)
    truth = json.loads((layout.town / "truth.json").read_text())
    yield layout, truth


@asynccontextmanager
async def region(root: Path, people: int = 600, **settings: Any) -> AsyncIterator[Region]:
    """The demo region on SQLite, started; everything closed afterwards."""
    with town(root, people) as (layout, truth):
        environ = layout.connector_environ()
        transport = RoutingTransport()
        built: dict[str, BuiltConnector] = {}
        try:
            for agency in AGENCY_FILES:
                config = load_service_config(layout.agency_config(agency))
                built[agency] = build_connector(config, ConnectorSettings(), environ=environ)
                transport.add(f"127.0.0.1:{layout.connector_port(agency)}", built[agency].app)
            oidc = LateTransport()
            broker_settings = BrokerSettings(
                data_dir=layout.broker_data,
                audit_origin=AUDIT_ORIGIN,
                signing_key=layout.keys / "broker.key",
                public_url="http://broker.test",
                **settings,
            )
            app = create_app(broker_settings, connector_transport=transport, oidc_transport=oidc)
            oidc.app = app
            async with app.router.lifespan_context(app):
                await load_registry_file(app.state.registry, ADMIN, layout.registry_file)
                client_transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(
                    transport=client_transport, base_url="http://broker.test"
                ) as client:
                    yield Region(layout, truth, built, transport, app, client)
        finally:
            for connector in built.values():
                connector.close()


def subject_of(person: dict[str, Any], *, identifiers: bool = True) -> dict[str, Any]:
    """The subject block a caseworker would type for a person of the town's truth."""
    subject: dict[str, Any] = {
        "given_name": person["given_name"],
        "family_name": person["family_name"],
        "date_of_birth": person["date_of_birth"],
        "sex": person["sex"],
        "postcode": person["postcode"],
    }
    if identifiers:
        ids = {k: person[k] for k in ("nhs_number", "upn", "ni_number") if person.get(k)}
        subject["identifiers"] = ids
    return subject


def known_to(truth: dict[str, Any], minimum: int) -> list[dict[str, Any]]:
    """People held by at least ``minimum`` agencies, children first."""
    people = [p for p in truth["people"] if len(p["records"]) >= minimum]
    return sorted(people, key=lambda p: (p["role"] != "child", -len(p["records"])))
