"""The broker's policy service, run on one thread of its own.

The embedded engine (regorus) is bound to the thread that builds it: using or dropping
it anywhere else fails. So the broker builds the policy service, decides with it,
reloads it and closes it all on one dedicated thread, and the event loop awaits the
answers. A decision takes a few milliseconds, so one thread keeps up with the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from policies.decide import decide_family
from policies.engine import PolicyEngine
from policies.model import FamilyDecision, FamilyQueryInput
from policies.service import PolicyService

__all__ = ["PinnedPolicy", "PolicyThread"]

T = TypeVar("T")


class PolicyThread:
    """Owns a ``PolicyService`` and runs every call to it on one thread."""

    def __init__(self, build: Callable[[], PolicyService]) -> None:
        """Build the service on the policy thread. Raises whatever ``build`` raises."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy")
        self._service = self._executor.submit(build).result()

    def call(self, work: Callable[[PolicyService], T]) -> T:
        """Run ``work`` on the policy thread and wait for it (from any thread)."""
        return self._executor.submit(work, self._service).result()

    async def call_async(self, work: Callable[[PolicyService], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, work, self._service)

    @asynccontextmanager
    async def pinned(self) -> AsyncIterator[PinnedPolicy]:
        """Decisions that all come from one bundle: the one in force at the first.

        A reload meanwhile puts a new bundle in force for later queries; this one keeps
        deciding with the bundle it started with, so its answer names one digest.
        """
        pinned = PinnedPolicy(self)
        try:
            yield pinned
        finally:
            if pinned.engine is not None:
                # Not awaited: the answer need not wait for the bookkeeping. After
                # ``close`` there is nothing left to release.
                with contextlib.suppress(RuntimeError):
                    self._executor.submit(self._service.unpin, pinned.engine)

    @property
    def digest(self) -> str:
        return self._service.digest

    @property
    def catalogue(self) -> Mapping[str, Any]:
        """The catalogue of the bundle in force (plain data: read from any thread)."""
        return self._service.catalogue

    @property
    def engine_name(self) -> str:
        return self._service.engine.name

    def reload(self, *, actor: str, reason: str, actor_agency: str | None = None) -> str:
        """Reload on the policy thread. Raises ``PolicyError`` and keeps the old bundle."""
        return self.call(
            lambda service: service.reload(actor=actor, reason=reason, actor_agency=actor_agency)
        )

    def close(self) -> None:
        self.call(lambda service: service.engine.close())
        self._executor.shutdown(wait=True)


class PinnedPolicy:
    """Decides with the engine its first decision used (see ``PolicyThread.pinned``)."""

    def __init__(self, thread: PolicyThread) -> None:
        self._thread = thread
        self.engine: PolicyEngine | None = None

    async def decide(self, query: FamilyQueryInput) -> FamilyDecision:
        """One decision (never raises: failures are a 'policy error' deny)."""
        engine = self.engine
        if engine is not None:
            return await self._thread.call_async(lambda _: decide_family(engine, query))

        def first(service: PolicyService) -> tuple[FamilyDecision, PolicyEngine]:
            pinned = service.pin()
            return decide_family(pinned, query), pinned

        decision, self.engine = await self._thread.call_async(first)
        return decision
