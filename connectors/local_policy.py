"""The agency's local policy: a Rego file that keeps the agency's last word.

The file (``connectors/agencies/<agency>.rego``, Rego v1) defines, under the package the
config names (``junction.local.<agency>``), a ``decision`` object with three sets:

- ``request``: refusals of the whole exchange, each ``{"scope", "code", "reason"}`` with
  scope ``purpose`` or ``requester`` (e.g. a purpose the agency does not accept);
- ``persons``: refusals of one person, ``{"ref", "code", "reason"}`` (a sealed adoption
  record, a refuge address, a live investigation);
- ``fields``: fields withheld for one person, ``{"ref", "field", "code", "reason"}``.

Its ``input`` is ``PolicyInput.to_json()``: the operation, the requester, the purpose,
the legal basis, break-glass, and each person's local ref, protective flags and the
fields asked for. An empty decision allows everything the broker asked.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from connectors.errors import ConfigError, LocalPolicyError
from connectors.protocol.messages import Refusal, RefusalScope
from connectors.service.ports import PolicyInput, PolicyVerdict, WithheldByPolicy
from policies.bundle import Bundle
from policies.engine import PolicyEngine, create_engine
from policies.errors import PolicyError
from policies.settings import PolicySettings

__all__ = ["RegoLocalPolicy"]


class RegoLocalPolicy:
    """Evaluates one agency's Rego file on the ``policies`` engine (the same as the broker's).

    ``engine`` is the seam: any ``policies.engine.PolicyEngine`` loaded with the file.
    The service calls ``decide`` from worker threads, so the engine must not be bound to
    the thread that built it; ``from_text`` therefore picks the ``regopy`` engine unless
    told otherwise (the regorus binding refuses to be used or dropped off its own thread).
    """

    def __init__(self, engine: PolicyEngine, *, package: str, origin: str = "local policy") -> None:
        self._engine = engine
        self._entrypoint = f"{package}.decision"
        self._origin = origin
        self.bundle_digest = engine.digest
        # Evaluate once now, so a broken file stops start-up, not the first request.
        try:
            self._evaluate({"operation": "check", "persons": []})
        except LocalPolicyError as exc:
            raise ConfigError(exc.detail) from None

    def close(self) -> None:
        """Release what the engine holds."""
        self._engine.close()

    @classmethod
    def from_text(
        cls,
        rego_text: str,
        *,
        package: str,
        origin: str = "local policy",
        settings: PolicySettings | None = None,
    ) -> RegoLocalPolicy:
        """Compile ``rego_text`` on the configured engine (in-process by default).

        Raises ``ConfigError`` if it does not compile or does not define the decision.
        """
        digest = "sha256:" + hashlib.sha256(rego_text.encode("utf-8")).hexdigest()
        bundle = Bundle(modules={origin: rego_text}, tests={}, data={}, digest=digest)
        try:
            engine = create_engine(settings or PolicySettings(engine="regopy"), bundle)
        except PolicyError as exc:
            raise ConfigError(f"{origin}: {exc.detail}") from None
        return cls(engine, package=package, origin=origin)

    @classmethod
    def from_file(
        cls, path: Path, *, package: str, settings: PolicySettings | None = None
    ) -> RegoLocalPolicy:
        """Load a Rego file. Raises ``ConfigError`` if it is unreadable or does not compile."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the local policy {path}: {exc.strerror}") from None
        return cls.from_text(text, package=package, origin=str(path), settings=settings)

    def decide(self, request: PolicyInput) -> PolicyVerdict:
        """Evaluate the policy for one exchange. Raises ``LocalPolicyError``."""
        decision = self._evaluate(request.to_json())
        try:
            return self._verdict(decision)
        except (KeyError, TypeError, ValueError) as exc:
            raise LocalPolicyError(
                f"{self._origin}: the decision has the wrong shape ({exc}); see the agency guide"
            ) from None

    def _evaluate(self, document: dict[str, Any]) -> dict[str, Any]:
        try:
            decision = self._engine.evaluate(self._entrypoint, document)
        except PolicyError as exc:
            raise LocalPolicyError(f"{self._origin}: {exc.detail}") from None
        if decision is None:
            raise LocalPolicyError(
                f"{self._origin}: {self._entrypoint} is undefined; the file must define it"
            )
        if not isinstance(decision, dict):
            raise LocalPolicyError(f"{self._origin}: {self._entrypoint} is not an object")
        return decision

    def _verdict(self, decision: dict[str, Any]) -> PolicyVerdict:
        refusals = sorted(decision.get("request", []), key=lambda r: (r["scope"], r["code"]))
        refusal = (
            Refusal(
                scope=RefusalScope(refusals[0]["scope"]),
                code=refusals[0]["code"],
                reason=refusals[0]["reason"],
            )
            if refusals
            else None
        )
        persons: dict[str, Refusal] = {}
        for item in sorted(decision.get("persons", []), key=lambda r: (r["ref"], r["code"])):
            persons.setdefault(
                item["ref"],
                Refusal(scope=RefusalScope.PERSON, code=item["code"], reason=item["reason"]),
            )
        fields: dict[str, dict[str, WithheldByPolicy]] = {}
        for item in sorted(
            decision.get("fields", []), key=lambda r: (r["ref"], r["field"], r["code"])
        ):
            fields.setdefault(item["ref"], {}).setdefault(
                item["field"], WithheldByPolicy(code=item["code"], reason=item["reason"])
            )
        return PolicyVerdict(
            bundle_digest=self.bundle_digest, refusal=refusal, persons=persons, fields=fields
        )
