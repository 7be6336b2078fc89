"""Factories of the oversight tests: a broker whose audit log key the test holds, so it
can sign checkpoints of its own (a forged root, say), and entries written straight to
that real log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from audit.checkpoint import NoteSigner
from audit.entry import Decision, Entry, Kind
from audit.log import DEFAULT_ORIGIN, AuditLog
from broker.app import create_app
from broker.foundation import Foundation
from broker.identity import DevIssuer, Role
from broker.settings import BrokerSettings
from broker.subjects import SubjectKeys
from tests.broker.foundation_kit import IssuerServer

CASEWORKER = "dev:council:sam.caseworker"
OFFICER_NAME = "Ivy Officer"


@dataclass
class Desk:
    """A running broker, its real audit log and the key that signs its checkpoints."""

    app: FastAPI
    client: httpx.AsyncClient
    audit: AuditLog
    signer: NoteSigner
    issuer: DevIssuer

    @property
    def foundation(self) -> Foundation:
        foundation: Foundation = self.app.state.foundation
        return foundation

    @property
    def keys(self) -> SubjectKeys:
        return self.foundation.subject_keys

    def as_(self, role: Role, agency: str = "council", name: str = OFFICER_NAME) -> dict[str, str]:
        token = self.issuer.mint(role=role, agency=agency, name=name)
        return {"Authorization": f"Bearer {token}"}

    def officer(self) -> dict[str, str]:
        return self.as_(Role.IG_OFFICER)

    def ref(self, kind: str, value: str) -> str:
        return self.keys.reference(kind, value)

    def append(self, kind: Kind = Kind.FETCH, **fields: Any) -> int:
        """Append one entry with sensible defaults; return its index."""
        values: dict[str, Any] = {
            "actor": CASEWORKER,
            "actor_agency": "council",
            "purpose": "early_help_assessment",
            "legal_basis": "consent",
            "decision": Decision.ALLOW,
        }
        values.update(fields)
        return self.audit.append(Entry(kind=kind, **values))

    def signed_size(self) -> int:
        """Sign a checkpoint of everything appended so far; return its size."""
        signed = self.audit.sign_checkpoint()
        assert signed is not None
        return signed[0]


def at(text: str) -> datetime:
    """A UTC time from ``YYYY-MM-DD HH:MM``."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


@asynccontextmanager
async def desk(
    tmp_path: Path, issuer: IssuerServer, *, database_url: str = "", **settings_: Any
) -> AsyncIterator[Desk]:
    """A broker trusting ``issuer`` with a fresh audit log, started and stopped.

    Extra keyword arguments are further ``BrokerSettings``.
    """
    settings = BrokerSettings(
        data_dir=tmp_path / "broker",
        database_url=database_url,
        dev_issuer=False,
        oidc_issuer=issuer.url,
        **settings_,
    )
    signer = NoteSigner.generate(DEFAULT_ORIGIN)
    log_url = database_url or f"sqlite:///{tmp_path / 'audit.db'}"
    audit = AuditLog.open(log_url, signer, checkpoint_interval=0.05)
    app = create_app(settings, audit_log=audit)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://broker") as client:
                yield Desk(app, client, audit, signer, issuer.issuer)
    finally:
        audit.close()
