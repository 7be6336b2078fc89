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
import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors._validation import first_problem
from connectors.encoding import not_utf8
from connectors.errors import ConfigError, LocalPolicyError
from connectors.protocol.messages import AgencyId, Refusal, RefusalScope, ShortText
from connectors.service.ports import PolicyInput, PolicyVerdict, WithheldByPolicy
from policies.bundle import Bundle
from policies.engine import PolicyEngine, create_engine
from policies.errors import PolicyError
from policies.settings import PolicySettings

__all__ = ["RegoLocalPolicy"]


_Call = tuple[str, tuple[Any, ...], Future[Any]]


class _RequestRefusal(BaseModel):
    scope: Literal["purpose", "requester"]
    code: AgencyId
    reason: ShortText


class _PersonRefusal(BaseModel):
    ref: str
    code: AgencyId
    reason: ShortText


class _FieldWithheld(BaseModel):
    ref: str
    field: str
    code: AgencyId
    reason: ShortText


class _Decision(BaseModel):
    """The decision's shape. A member it does not know is refused, not ignored: a
    misspelt ``fields`` would otherwise withhold nothing."""

    model_config = ConfigDict(extra="forbid")

    # Strict lists: regorus hands a set of objects over as an error, at the first
    # decision that has a member (see ``_evaluate``), so an empty set is refused early.
    request: list[_RequestRefusal] = Field(default_factory=list, strict=True)
    persons: list[_PersonRefusal] = Field(default_factory=list, strict=True)
    fields: list[_FieldWithheld] = Field(default_factory=list, strict=True)


def _bare(exc: BaseException) -> BaseException:
    """``exc`` without its traceback and chained errors, whose frames would keep the
    interpreter alive past its thread (and drop it, later, on another)."""
    exc.__context__ = exc.__cause__ = None
    return exc.with_traceback(None)


def _serve(
    build: Callable[[], PolicyEngine],
    calls: queue.SimpleQueue[_Call | None],
    ready: Future[tuple[str, str]],
) -> None:
    try:
        engine = build()
    except BaseException as exc:  # noqa: BLE001 - handed to the thread that asked
        ready.set_exception(_bare(exc))
        return
    ready.set_result((engine.name, engine.digest))
    while (call := calls.get()) is not None:
        method, args, future = call
        try:
            future.set_result(getattr(engine, method)(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that asked
            future.set_exception(_bare(exc))
    engine.close()


def _stop(calls: queue.SimpleQueue[_Call | None], thread: threading.Thread) -> None:
    calls.put(None)
    thread.join()


class _OwnThread:
    """A policy engine built, used and dropped on one thread of its own.

    The embedded (regorus) interpreter may only be used and dropped on the thread that
    made it, while the service decides from a pool of worker threads. The engine lives
    in that thread's frame alone, so it is dropped there however this object goes
    (``close``, or garbage collection). Decisions were serialised by the engine anyway,
    so one thread costs no throughput.
    """

    def __init__(self, build: Callable[[], PolicyEngine]) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        ready: Future[tuple[str, str]] = Future()
        self._thread = threading.Thread(
            target=_serve, args=(build, self._calls, ready), name="local-policy", daemon=True
        )
        self._thread.start()
        self._name, self._digest = ready.result()
        # Also at interpreter exit, while the thread can still drop the engine itself.
        self._finalizer = weakref.finalize(self, _stop, self._calls, self._thread)

    @property
    def name(self) -> str:
        return self._name

    @property
    def digest(self) -> str:
        return self._digest

    def evaluate(self, entrypoint: str, input_document: Any) -> Any:
        future: Future[Any] = Future()
        self._calls.put(("evaluate", (entrypoint, input_document), future))
        return future.result()

    def close(self) -> None:
        self._finalizer()


class RegoLocalPolicy:
    """Evaluates one agency's Rego file on the ``policies`` engine (the same as the broker's).

    ``engine`` is the seam: any ``policies.engine.PolicyEngine`` loaded with the file.
    ``from_text`` uses the embedded engine on a thread of its own unless told otherwise.
    (The ``regopy`` engine kept about 150 KB per decision in a connector process, so a
    busy connector grew without bound: see ``benchmarks/soak_bench.py``.)
    """

    def __init__(self, engine: PolicyEngine, *, package: str, origin: str = "local policy") -> None:
        self._engine = engine
        self._entrypoint = f"{package}.decision"
        self._origin = origin
        self.bundle_digest = engine.digest
        # Decide once now, so a broken file stops start-up, not the first request.
        try:
            self._verdict(self._evaluate({"operation": "check", "persons": []}))
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
            if settings is None:
                embedded = PolicySettings(engine="embedded")
                engine: PolicyEngine = _OwnThread(lambda: create_engine(embedded, bundle))
            else:
                engine = create_engine(settings, bundle)
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
        except UnicodeDecodeError:
            raise ConfigError(not_utf8(path)) from None
        return cls.from_text(text, package=package, origin=str(path), settings=settings)

    def decide(self, request: PolicyInput) -> PolicyVerdict:
        """Evaluate the policy for one exchange. Raises ``LocalPolicyError``."""
        return self._verdict(self._evaluate(request.to_json()))

    def _evaluate(self, document: dict[str, Any]) -> dict[str, Any]:
        try:
            decision = self._engine.evaluate(self._entrypoint, document)
        except PolicyError as exc:
            # regorus's word for a rule the file does not define: undefined, as elsewhere.
            if "not a valid rule path" not in exc.detail:
                raise LocalPolicyError(f"{self._origin}: {exc.detail}") from None
            decision = None
        if decision is None:
            raise LocalPolicyError(
                f"{self._origin}: {self._entrypoint} is undefined; the file must define it"
            )
        if not isinstance(decision, dict):
            raise LocalPolicyError(f"{self._origin}: {self._entrypoint} is not an object")
        return decision

    def _verdict(self, decision: dict[str, Any]) -> PolicyVerdict:
        """The verdict a decision object gives. Raises ``LocalPolicyError`` naming the
        first member of the wrong shape."""
        for member, value in decision.items():
            if isinstance(value, set | frozenset):
                raise LocalPolicyError(
                    f"{self._origin}: decision.{member} is a set; write an array: "
                    f"[x | some x in {member}]"
                )
        try:
            shaped = _Decision.model_validate(decision)
        except ValidationError as exc:
            problem = first_problem(exc, _Decision, root="decision")
            raise LocalPolicyError(
                f"{self._origin}: {problem} (the decision's shape is in the agency guide)"
            ) from None
        refusals = sorted(shaped.request, key=lambda r: (r.scope, r.code))
        refusal = (
            Refusal(
                scope=RefusalScope(refusals[0].scope),
                code=refusals[0].code,
                reason=refusals[0].reason,
            )
            if refusals
            else None
        )
        persons: dict[str, Refusal] = {}
        for item in sorted(shaped.persons, key=lambda r: (r.ref, r.code)):
            persons.setdefault(
                item.ref, Refusal(scope=RefusalScope.PERSON, code=item.code, reason=item.reason)
            )
        fields: dict[str, dict[str, WithheldByPolicy]] = {}
        for withheld in sorted(shaped.fields, key=lambda r: (r.ref, r.field, r.code)):
            fields.setdefault(withheld.ref, {}).setdefault(
                withheld.field, WithheldByPolicy(code=withheld.code, reason=withheld.reason)
            )
        return PolicyVerdict(
            bundle_digest=self.bundle_digest, refusal=refusal, persons=persons, fields=fields
        )
