"""The IG officers' API. Thin: roles and validation here, logic in the services.

IG officers read the audit trail; they never see agency facts (the broker holds none).
Admins may read the log's integrity material (checkpoints and proofs), which they need
to run the service, but not entries, subject access reports or reviews.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse

from broker._instants import WrittenTime
from broker.identity import Principal, Role, require, roles_text
from broker.oversight.sar import SubjectAccessReports, render_html
from broker.oversight.schemas import (
    AnomalyReport,
    AuditPage,
    AuditSearch,
    BreakGlassQueue,
    CheckpointView,
    ConsistencyCheckIn,
    ConsistencyView,
    EntryWithProof,
    ErasureIn,
    ErasureOut,
    ReviewIn,
    ReviewView,
    SubjectAccessIn,
    SubjectAccessReport,
)
from broker.oversight.service import OversightService

__all__ = ["INTEGRITY_ROLES", "OFFICER_ROLES", "audit_router", "oversight_router"]

OFFICER_ROLES = (Role.IG_OFFICER,)
INTEGRITY_ROLES = (Role.IG_OFFICER, Role.ADMIN)
_OFFICER = roles_text(*OFFICER_ROLES)
_INTEGRITY = roles_text(*INTEGRITY_ROLES)

audit_router = APIRouter(prefix="/v1/audit", tags=["audit"])
oversight_router = APIRouter(prefix="/v1/oversight", tags=["oversight"])
# Every store keeps an index in a signed 64-bit integer: a larger one names no entry.
EntryIndex = Annotated[int, Path(ge=0, le=2**63 - 1, description="An audit log index.")]
Officer = Annotated[Principal, Depends(require(*OFFICER_ROLES))]
Integrity = Annotated[Principal, Depends(require(*INTEGRITY_ROLES))]


async def _service(request: Request) -> OversightService:
    service: OversightService = request.app.state.oversight
    return service


async def _reports(request: Request) -> SubjectAccessReports:
    reports: SubjectAccessReports = request.app.state.subject_access
    return reports


Service = Annotated[OversightService, Depends(_service)]
Reports = Annotated[SubjectAccessReports, Depends(_reports)]


@audit_router.post(
    "/search",
    description=_OFFICER + " Identifiers travel in the body, never the URL; a person is"
    " found through the keyed references of their identifiers. Fields released are names"
    " only. Private values (justification, case reference) are shown unless erased. A"
    " search that names a person is itself recorded, as an audit_access entry filed under"
    " them.",
)
def search_audit(body: AuditSearch, principal: Officer, service: Service) -> AuditPage:
    """Search the audit log, newest first, one page at a time."""
    return service.search(principal, body)


@audit_router.get(
    "/entries/{index}",
    description=_OFFICER + " Reading an entry filed under a person is itself recorded, as"
    " an audit_access entry filed under them.",
)
def get_entry(index: EntryIndex, principal: Officer, service: Service) -> EntryWithProof:
    """One entry with its inclusion proof against the latest signed checkpoint."""
    return service.read_entry(principal, index)


@audit_router.post(
    "/entries/{index}/erasure",
    status_code=201,
    description=_OFFICER + " Deletes the entry's private values (justification, case"
    " reference, notes); the leaf stays, so the tree and every checkpoint still verify."
    " Recorded in the audit log as an erasure entry, the reason in clear.",
)
def erase_entry(
    index: EntryIndex, body: ErasureIn, principal: Officer, service: Service
) -> ErasureOut:
    """Erase one entry's private values, for a court order or a data subject's request."""
    return service.erase(principal, index, body)


@audit_router.get("/checkpoint", description=_INTEGRITY)
def latest_checkpoint(_: Integrity, service: Service) -> CheckpointView:
    """The latest signed checkpoint, with the key that signs it."""
    return service.checkpoint()


@audit_router.get("/consistency", description=_INTEGRITY)
def consistency_from_size(
    _: Integrity,
    service: Service,
    from_size: Annotated[int, Query(ge=1, description="The tree size you recorded.")],
) -> ConsistencyView:
    """Consistency proof from an earlier tree size to the latest signed checkpoint."""
    return service.consistency_from_size(from_size)


@audit_router.post(
    "/consistency",
    description=_INTEGRITY + " A note not signed by this log's key is rejected (422).",
)
def consistency_from_checkpoint(
    body: ConsistencyCheckIn, _: Integrity, service: Service
) -> ConsistencyView:
    """Check that the log still extends a checkpoint you kept, and return the proof."""
    return service.consistency_from_note(body.checkpoint)


@oversight_router.post(
    "/subject-access",
    description=_OFFICER + " `?format=html` returns a printable page instead of JSON. The"
    " report is itself recorded, as an audit_access entry filed under the person.",
    responses={200: {"content": {"text/html": {}}}},
    response_model=SubjectAccessReport,
)
def subject_access(
    body: SubjectAccessIn,
    principal: Officer,
    reports: Reports,
    format: Annotated[Literal["json", "html"], Query()] = "json",
) -> SubjectAccessReport | HTMLResponse:
    """Every recorded access to a person's information: who, when, which agency, why."""
    report = reports.report(principal, body)
    if format == "html":
        return HTMLResponse(render_html(report))
    return report


@oversight_router.get("/break-glass", description=_OFFICER)
def break_glass_queue(
    _: Officer,
    service: Service,
    state: Literal["pending", "reviewed", "all"] = "pending",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[
        int | None,
        Query(ge=0, le=2**63 - 1, description="The previous page's next_cursor."),
    ] = None,
) -> BreakGlassQueue:
    """Break-glass uses, newest first; by default those not yet reviewed."""
    return service.break_glass_queue(state, limit, cursor)


@oversight_router.post(
    "/break-glass/{index}/review",
    status_code=201,
    description=_OFFICER + " Recorded in the audit log as an access_review entry.",
)
def review_break_glass(
    index: EntryIndex, body: ReviewIn, principal: Officer, service: Service
) -> ReviewView:
    """Record the outcome of reviewing one break-glass use."""
    return service.review(principal, index, body)


@oversight_router.get("/anomalies", description=_OFFICER)
def anomalies(
    _: Officer,
    service: Service,
    since: WrittenTime | None = None,
    until: WrittenTime | None = None,
) -> AnomalyReport:
    """Patterns worth a look, each naming the caseworker, the entries and why it fired."""
    return service.anomalies(since, until)
