"""The policies package's one error hierarchy.

Every error carries a stable ``code``, a ``title``, the HTTP ``status`` it maps to when it
reaches a caller, and a ``detail`` saying what to do about it.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BundleError",
    "BundleTestsFailed",
    "EngineError",
    "EngineUnavailable",
    "PolicyError",
]


class PolicyError(Exception):
    """Base of every error the policies package raises."""

    code: ClassVar[str] = "policy-error"
    title: ClassVar[str] = "Policy error"
    status: ClassVar[int] = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BundleError(PolicyError):
    """A policy bundle cannot be read: a missing directory, bad JSON, a clash of names."""

    code = "policy-bundle-invalid"
    title = "Policy bundle is invalid"
    status = 500


class BundleTestsFailed(PolicyError):
    """A bundle's own Rego tests fail, so it is refused."""

    code = "policy-bundle-tests-failed"
    title = "Policy bundle fails its tests"
    status = 409


class EngineError(PolicyError):
    """The engine could not compile or evaluate the policy, or could not be reached."""

    code = "policy-engine-error"
    title = "Policy engine error"
    status = 503


class EngineUnavailable(EngineError):
    """The engine's server cannot be reached, or answers with something other than OPA's
    API: nothing is wrong with the bundle, and the same request may work later."""

    code = "policy-engine-unavailable"
    title = "The policy engine is unavailable"
