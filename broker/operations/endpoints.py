"""Operational endpoints: readiness and Prometheus metrics.

They need no sign-in, as load balancers and Prometheus scrape them; neither says
anything about a person, a caseworker or a query.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from broker.operations.metrics import CONTENT_TYPE, BrokerMetrics
from broker.operations.readiness import Readiness

__all__ = ["Ready", "router"]

router = APIRouter(tags=["operations"])


class Ready(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "checks": {
                        "database": "ok",
                        "audit_log": "ok (1208 entries)",
                        "policy": "ok (bundle 3f1c0a9b27de)",
                    },
                }
            ]
        }
    )

    status: str
    checks: dict[str, str]


@router.get(
    "/ready",
    description="Roles: none; no sign-in, for load balancers. 503 names each failed check.",
    responses={503: {"description": "A check failed; the problem body names it."}},
)
def ready(request: Request) -> Ready:
    """Readiness: the database and audit log answer and the policy bundle is loaded."""
    readiness: Readiness = request.app.state.readiness
    return Ready(status="ready", checks=readiness.check())


@router.get(
    "/metrics",
    description="Roles: none; no sign-in, for Prometheus. Labels hold no personal data.",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}}},
)
def metrics(request: Request) -> Response:
    """Prometheus metrics in the text exposition format."""
    registry: BrokerMetrics = request.app.state.metrics
    return Response(registry.exposition(), media_type=CONTENT_TYPE)
