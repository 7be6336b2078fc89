"""The broker's FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

from broker.errors import BrokerError
from broker.settings import BrokerSettings
from connectors.protocol.errors import ProtocolError
from connectors.protocol.problems import BodyLimitMiddleware, install_problem_handlers

__all__ = ["create_app"]


class Health(BaseModel):
    status: str
    service: str
    version: str


def create_app(settings: BrokerSettings) -> FastAPI:
    """Build the broker application from ``settings``."""
    app = FastAPI(
        title="Junction broker",
        version="0.1.0",
        description="Federated, consent-checked family queries with a verifiable audit log.",
    )
    app.state.settings = settings
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    install_problem_handlers(app, (BrokerError, ProtocolError))

    @app.get("/health", tags=["operations"])
    async def health() -> Health:
        """Liveness: the process is up and serving requests."""
        return Health(status="ok", service="broker", version=app.version)

    return app
