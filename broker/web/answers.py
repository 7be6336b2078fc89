"""Running a family query from a page, and showing its answer again for a while.

The same steps as the JSON API's endpoint: the form's idempotency key is claimed, the
query runs, its receipt is recorded and its answer is kept (sealed) under the key, so
a reloaded or re-sent form shows the same answer instead of running the query twice.
"""

from __future__ import annotations

import asyncio
import hashlib

from broker.foundation import Foundation
from broker.identity.principal import Principal
from broker.queries.schemas import FamilyQueryRequest, FamilyView

__all__ = ["kept_answer", "request_hash", "run_query"]


def request_hash(request: FamilyQueryRequest) -> str:
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


async def run_query(
    foundation: Foundation, principal: Principal, request: FamilyQueryRequest, key: str
) -> FamilyView:
    """Run ``request`` once for ``key``, or replay the answer it already had.

    Raises ``Conflict`` if the key was used for another request or is still running,
    ``BrokerError`` if the query could not be audited.
    """
    store = foundation.query_store
    claim = await asyncio.to_thread(store.claim, principal.subject, key, request_hash(request))
    if claim.answer is not None:
        return claim.answer
    try:
        view = await foundation.family_queries.run(principal, request)
    except BaseException:
        await asyncio.to_thread(store.release, claim)
        raise
    await asyncio.to_thread(store.complete, claim, view)
    return view


async def kept_answer(
    foundation: Foundation, principal: Principal, key: str, hashed: str
) -> FamilyView | None:
    """The answer kept under ``key``, or ``None`` once it has expired."""
    return await asyncio.to_thread(foundation.query_store.replay, principal.subject, key, hashed)
