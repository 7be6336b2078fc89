"""The policy service the broker holds: the current engine, decisions, and reloads.

A reload reads the bundle directories again, runs the new bundle's own Rego tests, builds
a new engine, and only then swaps it in, atomically: a decision in flight finishes on the
engine it started with. A bundle that cannot be read, fails a test or does not compile is
refused and the old one stays in force. Every successful reload is reported through the
``record_change`` callback (the broker writes it to the audit log as a policy change).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from policies.bundle import Bundle, load_bundle
from policies.decide import decide_family
from policies.engine import PolicyEngine, Probing
from policies.errors import BundleTestsFailed
from policies.model import FamilyDecision, FamilyQueryInput
from policies.rego_tests import run_rego_tests

__all__ = ["ChangeRecorder", "EngineFactory", "PolicyService"]

EngineFactory = Callable[[Bundle], PolicyEngine]


class ChangeRecorder(Protocol):
    def __call__(
        self, new_digest: str, previous_digest: str | None, actor: str, detail: dict[str, Any]
    ) -> None: ...


class PolicyService:
    """Holds the bundle in force and decides with it."""

    def __init__(
        self,
        bundle_dirs: Sequence[Path],
        engine_factory: EngineFactory,
        record_change: ChangeRecorder,
        *,
        actor: str = "system",
    ) -> None:
        """Load, test and start the first bundle, and record it as a change.

        Raises:
            BundleError: the bundle cannot be read.
            BundleTestsFailed: its own Rego tests fail.
            EngineError: it does not compile or the engine cannot take it.
        """
        self._dirs = tuple(bundle_dirs)
        self._factory = engine_factory
        self._record = record_change
        self._swap = threading.Lock()
        self._engine: PolicyEngine | None = None
        self._catalogue: Mapping[str, Any] = {}
        # Engines a query still decides with, by id: a reload retires the engine in force
        # but closes it only once no query holds it.
        self._pins: dict[int, tuple[PolicyEngine, int]] = {}
        self.reload(actor=actor, reason="start-up")

    @property
    def engine(self) -> PolicyEngine:
        assert self._engine is not None  # noqa: S101 - set by __init__ before any use
        return self._engine

    @property
    def catalogue(self) -> Mapping[str, Any]:
        """The bundle in force's ``catalogue`` document (purposes, gateways, ...)."""
        return self._catalogue

    @property
    def digest(self) -> str:
        """The digest of the bundle in force."""
        return self.engine.digest

    def probe(self) -> None:
        """Check that the engine in force can decide now; in-process engines always can.

        Raises:
            EngineUnavailable: its server cannot be reached, or has lost the bundle.
        """
        engine = self.engine
        if isinstance(engine, Probing):
            engine.probe()

    def decide(self, query: FamilyQueryInput) -> FamilyDecision:
        """Decide a family query with the bundle in force. Never raises (see decide_family)."""
        return decide_family(self.engine, query)

    def pin(self) -> PolicyEngine:
        """The engine in force, kept open until ``unpin``: one query's every decision
        comes from one bundle, whatever reloads happen while it runs."""
        engine = self.engine
        held = self._pins.get(id(engine))
        self._pins[id(engine)] = (engine, (held[1] if held else 0) + 1)
        return engine

    def unpin(self, engine: PolicyEngine) -> None:
        """Release a ``pin``; a retired engine is closed when its last query lets go."""
        _, count = self._pins[id(engine)]
        if count > 1:
            self._pins[id(engine)] = (engine, count - 1)
            return
        del self._pins[id(engine)]
        if engine is not self._engine:
            engine.close()

    def evaluate(self, entrypoint: str, input_document: Any) -> Any:
        """Evaluate any rule of the bundle in force (connectors' local policies use this).

        Raises:
            EngineError: the evaluation failed.
        """
        return self.engine.evaluate(entrypoint, input_document)

    def reload_if_changed(self, *, actor: str) -> str | None:
        """Reload only if the files on disk no longer match the bundle in force.

        Returns the new digest, or None when nothing changed. Meant for a periodic check
        (or a signal handler) in the service that holds the policy.

        Raises:
            BundleError, BundleTestsFailed, EngineError: as ``reload``; the bundle in
                force stays.
        """
        if load_bundle(self._dirs).digest == self.digest:
            return None
        return self.reload(actor=actor, reason="files changed")

    def reload(self, *, actor: str, reason: str = "reload", actor_agency: str | None = None) -> str:
        """Load the bundle directories again and put the new bundle in force.

        ``actor`` (and ``actor_agency``, the agency they act for) and ``reason`` are
        recorded with the change.

        Returns the new digest. On any failure the bundle in force stays as it was.

        Raises:
            BundleError: the new bundle cannot be read.
            BundleTestsFailed: its Rego tests fail; the detail names the failing tests.
            EngineError: it does not compile, or the engine refuses it.
            EngineUnavailable: the engine's server cannot be reached.
            Whatever ``record_change`` raises: the change was not recorded.
        """
        with self._swap:
            bundle = load_bundle(self._dirs)
            report = run_rego_tests(bundle)
            if not report.ok:
                names = ", ".join(f"{r.module}:{r.name}" for r in report.failures[:5])
                # A bundle that does not compile fails as one result whose detail names
                # the file and line: say it, or the author has only "(bundle):compile".
                first = report.failures[0].detail.strip() if report.failures else ""
                why = f": {first.splitlines()[0][:300]}" if first else ""
                raise BundleTestsFailed(
                    f"the new policy bundle was refused, {report.summary()}"
                    + (f" ({names}{why})" if names else " (it has no tests)")
                    + "; the bundle in force is unchanged. Fix the rules or the tests and reload."
                )
            engine = self._factory(bundle)
            previous = self._engine
            previous_digest = previous.digest if previous is not None else None
            # Recorded before the swap: a change the audit log did not take is not made.
            try:
                self._record(
                    bundle.digest,
                    previous_digest,
                    actor,
                    {
                        "reason": reason,
                        "actor_agency": actor_agency,
                        "engine": engine.name,
                        "modules": sorted(bundle.modules),
                        "tests_passed": report.passed,
                        "sources": [str(s) for s in bundle.sources],
                    },
                )
            except BaseException:
                engine.close()
                raise
            self._engine = engine
            catalogue = bundle.data.get("catalogue")
            self._catalogue = catalogue if isinstance(catalogue, Mapping) else {}
            if previous is not None and id(previous) not in self._pins:
                previous.close()
            return bundle.digest
