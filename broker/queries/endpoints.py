"""Routes of the family query. Thin: validation and roles here, logic in the services."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, Field, StringConstraints

from broker._instants import WrittenTime
from broker.identity.dependencies import require, roles_text
from broker.identity.principal import Principal, Role
from broker.queries.follow_up import FollowUpService, LinkDecided, ReceiptProofs
from broker.queries.schemas import FamilyQueryRequest, FamilyView, LinkDecisionIn
from broker.queries.service import FamilyQueryService
from broker.queries.store import QueryStore

__all__ = ["router"]

router = APIRouter(prefix="/v1/family-queries", tags=["family queries"])
# A query id is 32 hex digits: a longer one names nothing, and a 404 quotes at most this much.
QueryIdPath = Annotated[str, StringConstraints(max_length=64)]
IdempotencyKey = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
]


class QuerySummary(BaseModel):
    query_id: str
    actor: str = Field(description="Who ran the query.")
    actor_agency: str
    purpose: str
    status: str
    created_at: dt.datetime
    entries: list[int]
    release_entry: int | None


# The dependencies are coroutines so that FastAPI calls them on the event loop: a plain
# function would cost a trip through its thread pool on every request.
async def _queries(request: Request) -> FamilyQueryService:
    service: FamilyQueryService = request.app.state.family_queries
    return service


async def _store(request: Request) -> QueryStore:
    store: QueryStore = request.app.state.query_store
    return store


async def _follow_up(request: Request) -> FollowUpService:
    service: FollowUpService = request.app.state.follow_up
    return service


@router.post(
    "",
    description=roles_text(Role.CASEWORKER)
    + " Ask every agency that may answer about a family; returns the joined-up view."
    " Send an `Idempotency-Key` header so a retried request is answered again rather"
    " than run twice.",
)
async def create_family_query(
    body: FamilyQueryRequest,
    response: Response,
    principal: Annotated[Principal, Depends(require(Role.CASEWORKER))],
    service: Annotated[FamilyQueryService, Depends(_queries)],
    store: Annotated[QueryStore, Depends(_store)],
    idempotency_key: Annotated[IdempotencyKey | None, Header()] = None,
) -> FamilyView:
    claim = None
    if idempotency_key is not None:
        request_hash = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        claim = await asyncio.to_thread(
            store.claim, principal.subject, idempotency_key, request_hash
        )
        if claim.answer is not None:
            response.headers["Idempotent-Replayed"] = "true"
            return claim.answer
    try:
        view = await service.run(principal, body)
    except BaseException:
        if claim is not None:
            await asyncio.to_thread(store.release, claim)
        raise
    if claim is not None:
        await asyncio.to_thread(store.complete, claim, view)
    return view


@router.get(
    "",
    description=roles_text(Role.CASEWORKER, Role.IG_OFFICER)
    + " Recent family queries, newest first: a caseworker sees their own, an IG officer"
    " everyone's. For older ones, pass the `created_at` of the last one shown as `before`.",
)
async def list_family_queries(
    principal: Annotated[Principal, Depends(require(Role.CASEWORKER, Role.IG_OFFICER))],
    service: Annotated[FollowUpService, Depends(_follow_up)],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: WrittenTime | None = None,
) -> list[QuerySummary]:
    rows = await asyncio.to_thread(service.queries, principal, limit, before)
    return [
        QuerySummary(
            query_id=row.query_id,
            actor=row.actor,
            actor_agency=row.actor_agency,
            purpose=row.purpose,
            status=row.status,
            created_at=row.created_at,
            entries=list(row.entries),
            release_entry=row.release_entry,
        )
        for row in rows
    ]


@router.get(
    "/{query_id}",
    description=roles_text(Role.CASEWORKER)
    + " The answer of one of your own queries again, for 10 minutes after it, if it was"
    " sent with an `Idempotency-Key` (only then is the answer kept).",
)
async def family_query_answer(
    query_id: QueryIdPath,
    principal: Annotated[Principal, Depends(require(Role.CASEWORKER))],
    service: Annotated[FollowUpService, Depends(_follow_up)],
) -> FamilyView:
    return await asyncio.to_thread(service.answer, principal, query_id)


@router.get(
    "/{query_id}/receipt",
    description=roles_text(Role.CASEWORKER, Role.IG_OFFICER)
    + " The audit receipt of a query: every entry's inclusion proof against one signed"
    " checkpoint. A caseworker may read the receipts of their own queries only.",
)
async def family_query_receipt(
    query_id: QueryIdPath,
    principal: Annotated[Principal, Depends(require(Role.CASEWORKER, Role.IG_OFFICER))],
    service: Annotated[FollowUpService, Depends(_follow_up)],
) -> ReceiptProofs:
    return await service.receipt(principal, query_id)


@router.post(
    "/{query_id}/links",
    description=roles_text(Role.CASEWORKER)
    + " Confirm or reject a link the query marked uncertain. Audited; later queries use"
    " the decision.",
)
async def decide_link(
    query_id: QueryIdPath,
    body: LinkDecisionIn,
    principal: Annotated[Principal, Depends(require(Role.CASEWORKER))],
    service: Annotated[FollowUpService, Depends(_follow_up)],
) -> LinkDecided:
    return await service.decide_link(principal, query_id, body)
