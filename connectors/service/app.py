"""The connector's FastAPI application: thin routes over ``ConnectorService``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

from connectors.errors import ConnectorError, NotReady, SourceError
from connectors.protocol.api_docs import install_api_docs
from connectors.protocol.envelope import Envelope
from connectors.protocol.errors import EnvelopeError, ProtocolError
from connectors.protocol.headers import SecurityHeadersMiddleware
from connectors.protocol.problems import (
    PROBLEM_RESPONSES,
    BodyLimitMiddleware,
    install_problem_handlers,
)
from connectors.service.exchange import ConnectorService
from connectors.service.metrics import CONTENT_TYPE_LATEST

__all__ = ["create_connector_app"]

_ENVELOPE_MEDIA_TYPE = "application/json"
# The wire shape of a signed envelope (connectors.protocol.envelope), for the OpenAPI
# document: the routes read the raw bytes themselves, since the signature covers them.
_ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["header", "body", "signature"],
    "properties": {
        "header": {
            "type": "object",
            "required": [
                "alg",
                "kid",
                "sender",
                "audience",
                "iat",
                "exp",
                "nonce",
                "type",
                "body_digest",
            ],
            "properties": {
                **{
                    name: {"type": "string"}
                    for name in ("alg", "kid", "sender", "audience", "nonce", "type")
                },
                "iat": {"type": "integer"},
                "exp": {"type": "integer"},
                "body_digest": {"type": "string"},
            },
        },
        "body": {"type": "object"},
        "signature": {"type": "string", "description": "Ed25519, base64."},
    },
}
_ENVELOPE_EXCHANGE: dict[str, Any] = {
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {_ENVELOPE_MEDIA_TYPE: {"schema": _ENVELOPE_SCHEMA}},
        }
    },
    "responses": {
        200: {
            "description": "The agency's answer, in an envelope signed by its key.",
            "content": {_ENVELOPE_MEDIA_TYPE: {"schema": _ENVELOPE_SCHEMA}},
        }
    },
}


class Health(BaseModel):
    status: str
    agency: str


async def _probe(service: ConnectorService, probe: Callable[[], None]) -> None:
    """Run the readiness probe. Raises ``SourceError`` or ``NotReady`` (both 503 or 504)."""
    try:
        await service.run_source_call("ready", probe)
    except SourceError:
        raise
    except ConnectorError as exc:
        # Whatever the probe found (a damaged file, a table gone), the answer to "can you
        # serve?" is no: a 503, never a server error.
        raise NotReady(exc.detail) from None


def create_connector_app(
    service: ConnectorService,
    *,
    broker_name: str,
    ready_probe: Callable[[], None] | None = None,
    max_body_bytes: int = 1_048_576,
) -> FastAPI:
    """Build the HTTP app of one agency's connector.

    ``service`` holds the seams (signer, verifier, source, local policy, local audit,
    clock); ``ready_probe`` is called in a worker thread by ``/ready`` and raises a
    ``ConnectorError`` when the agency's system cannot be reached.
    """
    agency = service.agency.agency_id
    app = FastAPI(
        title=f"Junction connector: {service.agency.agency_name}",
        version="0.1.0",
        description="Answers the broker's signed match and fetch requests for one agency.",
        responses=PROBLEM_RESPONSES,
        # Served from the connector's own files by install_api_docs, not from a CDN.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.service = service
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)
    install_problem_handlers(app, (ConnectorError, ProtocolError))
    install_api_docs(app)
    metrics = service.metrics

    async def observed(
        endpoint: str, handle: Callable[[], Awaitable[tuple[Envelope, str]]]
    ) -> Response:
        started = time.perf_counter()
        outcome = "error"
        try:
            envelope, outcome = await handle()
            return Response(envelope.to_bytes(), media_type=_ENVELOPE_MEDIA_TYPE)
        except EnvelopeError:
            outcome = "rejected"
            raise
        except ConnectorError as exc:
            outcome = exc.code
            raise
        finally:
            metrics.requests.labels(endpoint, outcome).inc()
            metrics.latency.labels(endpoint).observe(time.perf_counter() - started)

    @app.get("/v1/manifest", tags=["protocol"], responses=_ENVELOPE_EXCHANGE["responses"])
    async def manifest() -> Response:
        """The agency's signed manifest: fields offered, their types and sensitivity, key."""

        async def handle() -> tuple[Envelope, str]:
            return service.manifest(broker_name), "ok"

        return await observed("manifest", handle)

    @app.post("/v1/match", tags=["protocol"], **_ENVELOPE_EXCHANGE)
    async def match(request: Request) -> Response:
        """Answer a signed match request with candidate refs (never facts), signed."""
        raw = await request.body()

        async def handle() -> tuple[Envelope, str]:
            envelope = await service.match(raw)
            return envelope, str(envelope.body["status"])

        return await observed("match", handle)

    @app.post("/v1/fetch", tags=["protocol"], **_ENVELOPE_EXCHANGE)
    async def fetch(request: Request) -> Response:
        """Answer a signed fetch request with exactly the fields it names, signed."""
        raw = await request.body()

        async def handle() -> tuple[Envelope, str]:
            envelope = await service.fetch(raw)
            return envelope, str(envelope.body["status"])

        return await observed("fetch", handle)

    @app.get("/health", tags=["operations"])
    async def health() -> Health:
        """Liveness: the process is up and serving requests."""
        return Health(status="ok", agency=agency)

    @app.get("/ready", tags=["operations"])
    async def ready() -> Health:
        """Readiness: the agency's own system answers. 503 problem when it does not."""
        if ready_probe is not None:
            await _probe(service, ready_probe)
        return Health(status="ready", agency=agency)

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    async def metrics_text() -> Response:
        """Prometheus text: requests by endpoint and outcome, latencies, source time."""
        body = await anyio.to_thread.run_sync(metrics.render)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app
