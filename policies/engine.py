"""The seam between Junction and whatever evaluates Rego.

A ``PolicyEngine`` holds one loaded bundle and answers ``evaluate(entrypoint, input)``
with the JSON value of a rule (``None`` when the rule is undefined). Three engines share
this interface: ``embedded`` (regorus, in-process, the default), ``regopy`` (rego-cpp,
in-process) and ``opa`` (an Open Policy Agent server over its REST API). Entry points are
written as data paths without the ``data.`` prefix: ``junction.family.decision``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from policies.bundle import Bundle
from policies.settings import PolicySettings

__all__ = ["JsonEvaluating", "PolicyEngine", "Probing", "create_engine"]


@runtime_checkable
class PolicyEngine(Protocol):
    """Evaluates rules of one loaded bundle."""

    @property
    def name(self) -> str:
        """A short name for decisions and audit entries: ``regorus``, ``regopy``, ``opa``."""
        ...

    @property
    def digest(self) -> str:
        """The digest of the bundle this engine evaluates."""
        ...

    def evaluate(self, entrypoint: str, input_document: Any) -> Any:
        """The value of the rule at ``entrypoint`` for this input, or None if undefined.

        Raises:
            EngineError: the engine failed (a built-in error, a server that cannot be
                reached, a rule that does not compile).
        """
        ...

    def close(self) -> None:
        """Release what the engine holds (a connection, a compiled policy)."""
        ...


@runtime_checkable
class Probing(Protocol):
    """An engine that can be down while the broker runs (a server), and can say so."""

    def probe(self) -> None:
        """Return if the engine can decide now.

        Raises:
            EngineUnavailable: the server cannot be reached, or no longer holds the bundle.
        """
        ...


@runtime_checkable
class JsonEvaluating(Protocol):
    """An engine that can also take and give JSON text for some entry points, so a caller
    holding typed models skips building Python dicts on both sides."""

    @property
    def compiled(self) -> frozenset[str]:
        """The entry points ``evaluate_json`` takes."""
        ...

    def evaluate_json(self, entrypoint: str, input_json: str) -> str | None:
        """The rule's value as JSON text, or None if undefined.

        Raises:
            EngineError: as ``PolicyEngine.evaluate``, or ``entrypoint`` is not one of
                ``compiled``.
        """
        ...


def create_engine(
    settings: PolicySettings, bundle: Bundle, *, compiled: Iterable[str] = ()
) -> PolicyEngine:
    """Build the engine the settings name, loaded with ``bundle``.

    ``compiled`` names entry points the embedded engine runs on regorus's virtual machine
    when the settings allow it (only policies checked against the interpreter belong
    there; see policies/_regorus.py). Other engines ignore it.

    Raises:
        EngineError: the bundle does not compile, or the OPA server refuses it or cannot
            be reached.
    """
    if settings.engine == "opa":
        from policies._opa import OpaServerEngine

        return OpaServerEngine(bundle, settings.opa_url, timeout=settings.opa_timeout_seconds)
    if settings.engine == "regopy":
        from policies._regopy import RegopyEngine

        return RegopyEngine(bundle)
    from policies._regorus import RegorusEngine

    return RegorusEngine(bundle, compiled=compiled if settings.compiled else ())
