"""Factories for the broker's foundation tests: a real development issuer served over a
real socket, a real audit log, a broker app on SQLite or PostgreSQL, and fake connectors
that sign their manifests with real keys.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI

from audit.checkpoint import NoteSigner
from audit.log import DEFAULT_ORIGIN, AuditLog
from audit.search import SearchQuery
from broker.app import create_app
from broker.foundation import open_dev_issuer
from broker.identity import DevIssuer, Role
from broker.settings import BrokerSettings
from connectors.protocol.envelope import Signer
from connectors.protocol.keys import KeyPair, public_key_to_b64
from connectors.protocol.messages import FieldOffer, FieldType, Manifest, Sensitivity

POLICE_FIELDS = [
    FieldOffer(
        name="police.domestic_abuse_incidents_12m",
        type=FieldType.INTEGER,
        sensitivity=Sensitivity.CRIMINAL_OFFENCE,
    ),
    FieldOffer(
        name="police.missing_episodes_12m", type=FieldType.INTEGER, sensitivity=Sensitivity.ORDINARY
    ),
]


@dataclass
class IssuerServer:
    """A broker serving only as the development issuer, on a real local socket."""

    url: str
    issuer: DevIssuer
    data_dir: Path


@contextmanager
def serve_dev_issuer(data_dir: Path) -> Iterator[IssuerServer]:
    """Run a broker with the development issuer on a free port; stop it afterwards."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = BrokerSettings(
        data_dir=data_dir, public_url=f"http://127.0.0.1:{port}", dev_issuer=True
    )
    config = uvicorn.Config(create_app(settings), log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the development issuer did not start")
        time.sleep(0.02)
    try:
        yield IssuerServer(settings.dev_issuer_url(), open_dev_issuer(settings), data_dir)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass
class FakeConnector:
    """An agency's connector as far as the registry sees it: a signed manifest."""

    agency_id: str
    key: KeyPair = field(default_factory=KeyPair.generate)
    announced_agency: str | None = None
    announced_type: str | None = None
    announced_key: KeyPair | None = None
    consent_key_id: str | None = None
    fields: list[FieldOffer] = field(default_factory=lambda: list(POLICE_FIELDS))
    audience: str = "broker"
    up: bool = True
    # Answers its manifest with this many bytes of nothing instead (a hostile connector).
    flood_bytes: int = 0

    @property
    def public_key(self) -> str:
        return public_key_to_b64(self.key.public_key)

    def manifest(self) -> bytes:
        announced = self.announced_key or self.key
        message = Manifest(
            agency_id=self.announced_agency or self.agency_id,
            agency_name=f"{self.agency_id.title()} Service",
            agency_type=self.announced_type or self.agency_id,
            public_key=public_key_to_b64(announced.public_key),
            key_id=announced.key_id,
            linkage_key_id="link-2026",
            consent_key_id=self.consent_key_id,
            fields=self.fields,
        )
        return Signer(self.key, self.agency_id).seal(message, self.audience).to_bytes()


async def _nothing(size: int) -> AsyncIterator[bytes]:
    for _ in range(0, size, 65536):
        yield b" " * 65536


class ConnectorTransport(httpx.AsyncBaseTransport):
    """Routes ``http://<agency>.test/...`` to that fake connector; others are unreachable."""

    def __init__(self, connectors: dict[str, FakeConnector]) -> None:
        self.connectors = connectors

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        agency = request.url.host.removesuffix(".test")
        connector = self.connectors.get(agency)
        if connector is None or not connector.up:
            raise httpx.ConnectError(f"no route to {request.url.host}", request=request)
        if request.url.path != "/v1/manifest":
            return httpx.Response(404, request=request)
        if connector.flood_bytes:
            return httpx.Response(200, content=_nothing(connector.flood_bytes), request=request)
        return httpx.Response(
            200,
            content=connector.manifest(),
            headers={"content-type": "application/json"},
            request=request,
        )


@dataclass
class Broker:
    """A running broker app with a client, its audit log, and a way to sign in."""

    app: FastAPI
    client: httpx.AsyncClient
    audit: AuditLog
    issuer: DevIssuer
    connectors: dict[str, FakeConnector]
    settings: BrokerSettings

    def token(self, role: Role | str, agency: str = "council", name: str = "Sam Okafor") -> str:
        return self.issuer.mint(role=role, agency=agency, name=name)

    def as_(self, role: Role | str, agency: str = "council") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, agency)}"}

    def entries(self, kind: str) -> list[Any]:
        """Every audit entry of ``kind``, oldest first, read back from the real log."""
        found: list[Any] = []
        before = None
        while True:
            page = self.audit.search(SearchQuery(kind=kind, before=before, limit=500))
            found.extend(page.entries)
            if page.next_before is None:
                return sorted(found, key=lambda e: e.index)
            before = page.next_before


def reset_postgres(url: str) -> None:
    """Drop every table so the next broker starts from an empty database."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@asynccontextmanager
async def running_broker(
    tmp_path: Path,
    issuer: IssuerServer,
    *,
    database_url: str = "",
    connectors: dict[str, FakeConnector] | None = None,
) -> AsyncIterator[Broker]:
    """A broker trusting ``issuer``, with its own audit log, started and stopped."""
    connectors = connectors if connectors is not None else {}
    settings = BrokerSettings(
        data_dir=tmp_path / "broker",
        database_url=database_url,
        dev_issuer=False,
        oidc_issuer=issuer.url,
    )
    log_url = database_url or f"sqlite:///{tmp_path / 'audit.db'}"
    audit = AuditLog.open(log_url, NoteSigner.generate(DEFAULT_ORIGIN), checkpoint_interval=0.05)
    app = create_app(settings, audit_log=audit, connector_transport=ConnectorTransport(connectors))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://broker") as client:
                yield Broker(app, client, audit, issuer.issuer, connectors, settings)
    finally:
        audit.close()
