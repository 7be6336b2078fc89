"""The broker's FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from audit.log import AuditLog
from broker.consent.endpoints import router as consent_router
from broker.errors import BrokerError
from broker.foundation import Foundation
from broker.identity.endpoints import router as dev_issuer_router
from broker.operations.endpoints import router as operations_router
from broker.oversight.endpoints import audit_router, oversight_router
from broker.policy_admin.endpoints import router as policy_router
from broker.queries.endpoints import router as queries_router
from broker.registry.endpoints import router as registry_router
from broker.settings import BrokerSettings
from broker.web import install_web, open_web
from connectors.protocol.api_docs import install_api_docs
from connectors.protocol.errors import ProtocolError
from connectors.protocol.headers import SecurityHeadersMiddleware
from connectors.protocol.methods import HeadAsGetMiddleware
from connectors.protocol.problems import (
    PROBLEM_RESPONSES,
    BodyLimitMiddleware,
    install_problem_handlers,
)

__all__ = ["create_app"]


class Health(BaseModel):
    status: str
    service: str
    version: str


def create_app(
    settings: BrokerSettings,
    *,
    audit_log: AuditLog | None = None,
    connector_transport: httpx.AsyncBaseTransport | None = None,
    oidc_transport: httpx.AsyncBaseTransport | None = None,
    opened: Foundation | None = None,
) -> FastAPI:
    """Build the broker application from ``settings``.

    ``audit_log`` replaces the broker's own log (which is otherwise opened at start-up
    from settings); the transports are how tests reach connectors and the identity
    provider. ``opened`` is a foundation already opened, served instead of one opened
    at start-up and closed at shutdown: ``broker serve`` opens it before it starts, so
    that a setting that cannot work ends the command with one line.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        foundation = opened or Foundation.open(
            settings,
            audit_log=audit_log,
            connector_transport=connector_transport,
            oidc_transport=oidc_transport,
        )
        app.state.foundation = foundation
        app.state.registry = foundation.registry
        app.state.consent = foundation.consent
        app.state.token_verifier = foundation.token_verifier
        app.state.dev_issuer = foundation.dev_issuer
        app.state.family_queries = foundation.family_queries
        app.state.query_store = foundation.query_store
        app.state.follow_up = foundation.follow_up
        open_web(app, foundation, settings)
        app.state.metrics = foundation.metrics
        app.state.oversight = foundation.oversight
        app.state.subject_access = foundation.subject_access
        app.state.readiness = foundation.readiness
        try:
            yield
        finally:
            await foundation.aclose()

    app = FastAPI(
        title="Junction broker",
        version="0.1.0",
        description="Federated, consent-checked family queries with a verifiable audit log.",
        lifespan=lifespan,
        responses=PROBLEM_RESPONSES,
        # Served from the broker's own files by install_api_docs, not from a CDN.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.settings = settings
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_body_bytes, media_type_required=True
    )
    app.add_middleware(HeadAsGetMiddleware)
    install_problem_handlers(app, (BrokerError, ProtocolError))
    app.include_router(registry_router)
    app.include_router(consent_router)
    app.include_router(queries_router)
    app.include_router(policy_router)
    app.include_router(audit_router)
    app.include_router(oversight_router)
    app.include_router(operations_router)
    if settings.dev_issuer:
        app.include_router(dev_issuer_router)
    install_web(app)
    install_api_docs(app)
    # Outermost, so that every answer carries them: errors, redirects and files too. The
    # development issuer's token answers are as private as the API's (RFC 6749 §5.1).
    app.add_middleware(SecurityHeadersMiddleware, private_prefixes=("/v1/", "/dev-oidc/"))

    @app.get("/health", tags=["operations"])
    async def health() -> Health:
        """Liveness: the process is up and serving requests."""
        return Health(status="ok", service="broker", version=app.version)

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        """People who type the bare address want the web pages."""
        return RedirectResponse("/web", status_code=307)

    return app
