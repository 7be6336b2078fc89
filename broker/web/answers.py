"""Running a family query from a page, and showing its answer again for a while.

The same steps as the JSON API's endpoint: the form's idempotency key is claimed, the
query runs, its receipt is recorded and its answer is kept (sealed) under the key, so
a reloaded or re-sent form shows the same answer instead of running the query twice.
A form sent while its first sending still runs (a double click) waits for that answer.
"""

from __future__ import annotations

import asyncio
import hashlib

from broker.foundation import Foundation
from broker.identity.principal import Principal
from broker.queries.schemas import FamilyQueryRequest, FamilyView
from broker.web.once import once

__all__ = ["QUERY_PATIENCE", "kept_answer", "request_hash", "run_query"]

# How long a form sent again waits for its first sending's answer: longer than the
# longest deadline a family query may be given (60 seconds).
QUERY_PATIENCE = 65.0


def request_hash(request: FamilyQueryRequest) -> str:
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


async def run_query(
    foundation: Foundation, principal: Principal, request: FamilyQueryRequest, key: str
) -> FamilyView | None:
    """Run ``request`` once for ``key`` (a ``form_key`` naming it), or replay the answer
    it already had, waiting for it while a first sending with the key still runs.

    ``None`` if that one still runs after ``QUERY_PATIENCE`` seconds. Raises
    ``BrokerError`` if the query could not be audited.
    """
    store = foundation.query_store
    hashed = request_hash(request)
    claim = await once(
        lambda: asyncio.to_thread(store.claim, principal.subject, key, hashed),
        patience=QUERY_PATIENCE,
    )
    if claim is None:
        return None
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
