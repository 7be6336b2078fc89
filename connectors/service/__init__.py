"""The connector service an agency runs next to its own system.

``create_connector_app`` builds the FastAPI app over a ``ConnectorService``, whose seams
(signer, verifier, source, local policy, local audit, checkpoint guard, clock) are
constructor arguments; ``connectors.service.wiring.build_connector`` wires the real ones from
``agency.yaml``.
"""

from connectors.service.app import create_connector_app
from connectors.service.checkpoints import CheckpointGuard, CheckpointHead
from connectors.service.exchange import AgencyIdentity, ConnectorService
from connectors.service.metrics import ConnectorMetrics
from connectors.service.ports import (
    AgencySource,
    AuditEvent,
    AuditKind,
    FetchResult,
    LocalAudit,
    LocalPolicy,
    PolicyInput,
    PolicyPerson,
    PolicyVerdict,
    WithheldByPolicy,
)

__all__ = [
    "AgencyIdentity",
    "AgencySource",
    "AuditEvent",
    "AuditKind",
    "CheckpointGuard",
    "CheckpointHead",
    "ConnectorMetrics",
    "ConnectorService",
    "FetchResult",
    "LocalAudit",
    "LocalPolicy",
    "PolicyInput",
    "PolicyPerson",
    "PolicyVerdict",
    "WithheldByPolicy",
    "create_connector_app",
]
