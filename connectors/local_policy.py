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
import threading
from pathlib import Path
from typing import Any

import orjson
import regopy

from connectors.errors import ConfigError, LocalPolicyError
from connectors.protocol.messages import Refusal, RefusalScope
from connectors.service.ports import PolicyInput, PolicyVerdict, WithheldByPolicy

__all__ = ["RegoLocalPolicy"]


class RegoLocalPolicy:
    """Evaluates one agency's Rego file in-process (``regopy``), one query at a time."""

    def __init__(self, rego_text: str, *, package: str, origin: str = "local policy") -> None:
        self._query = f"data.{package}.decision"
        self.bundle_digest = "sha256:" + hashlib.sha256(rego_text.encode("utf-8")).hexdigest()
        self._origin = origin
        self._lock = threading.Lock()
        self._interpreter = regopy.Interpreter()
        try:
            self._interpreter.add_module(origin, rego_text)
            # Evaluate once now, so a broken file stops start-up, not the first request.
            self._evaluate({"operation": "check", "persons": []})
        except (regopy.RegoError, LocalPolicyError) as exc:
            detail = exc.detail if isinstance(exc, LocalPolicyError) else _first_line(exc)
            raise ConfigError(f"{origin}: {detail}") from None

    @classmethod
    def from_file(cls, path: Path, *, package: str) -> RegoLocalPolicy:
        """Load a Rego file. Raises ``ConfigError`` if it is unreadable or does not compile."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the local policy {path}: {exc.strerror}") from None
        return cls(text, package=package, origin=str(path))

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
        with self._lock:
            try:
                self._interpreter.set_input_term(orjson.dumps(document).decode("utf-8"))
                output = self._interpreter.query(self._query)
            except regopy.RegoError as exc:
                raise LocalPolicyError(f"{self._origin}: {_first_line(exc)}") from None
        text = str(output)
        if not output.ok() or text == "undefined":
            raise LocalPolicyError(
                f"{self._origin}: {self._query} is undefined; the file must define it"
            )
        result = orjson.loads(text)
        expressions = result.get("expressions") if isinstance(result, dict) else None
        if not expressions or not isinstance(expressions[0], dict):
            raise LocalPolicyError(f"{self._origin}: {self._query} is not an object")
        decision: dict[str, Any] = expressions[0]
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


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
