"""An embedded engine on regopy (rego-cpp).

Each entry point is compiled into a regopy bundle the first time it is asked for and
reused after that: ``Interpreter.query`` recompiles everything on every call, which is
far too slow for a decision per request. ``strict_built_in_errors`` is on, so a failing
built-in is an error rather than a silently undefined value.

Known rego-cpp gaps the policies avoid: ``time.parse_rfc3339_ns`` rejects a trailing
``Z`` (the typed input layer writes ``+00:00``), ``some k, v in`` does not compile inside
comprehensions, and an answer of ``false`` reads as undefined, so entry points that
return booleans should wrap them in an object.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import regopy

from policies.bundle import Bundle
from policies.errors import EngineError

__all__ = ["RegopyEngine"]


def _summary(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if line not in {"Errors:", "<error>"}]
    return useful[0] if useful else "unknown error"


class RegopyEngine:
    """Evaluates a bundle with regopy. Build one per bundle load."""

    def __init__(self, bundle: Bundle, *, include_tests: bool = False) -> None:
        """Load modules and data into one interpreter.

        Raises:
            EngineError: a module does not parse or the data cannot be loaded.
        """
        self._digest = bundle.digest
        self._lock = threading.Lock()
        self._modules = bundle.all_modules() if include_tests else dict(bundle.modules)
        self._data = json.dumps(dict(bundle.data))
        self._compiled: dict[str, tuple[Any, Any]] = {}

    @property
    def name(self) -> str:
        return "regopy"

    @property
    def digest(self) -> str:
        return self._digest

    def _compile(self, entrypoint: str) -> tuple[Any, Any]:
        interpreter = regopy.Interpreter()
        interpreter.strict_built_in_errors = True
        try:
            for path, source in self._modules.items():
                interpreter.add_module(path, source)
            interpreter.add_data_json(self._data)
            compiled = interpreter.build(None, [entrypoint.replace(".", "/")])
        except regopy.RegoError as exc:
            raise EngineError(f"the policy does not compile: {_summary(str(exc))}") from None
        if not compiled.ok():
            raise EngineError(f"the policy does not compile: {_summary(str(compiled.node()))}")
        return interpreter, compiled

    def evaluate(self, entrypoint: str, input_document: Any) -> Any:
        """The rule's value, or None when undefined (regopy also reads ``false`` so).

        Raises:
            EngineError: the policy does not compile or the evaluation failed.
        """
        with self._lock:
            if entrypoint not in self._compiled:
                self._compiled[entrypoint] = self._compile(entrypoint)
            interpreter, compiled = self._compiled[entrypoint]
            try:
                interpreter.set_input(input_document)
                output = interpreter.query_bundle_entrypoint(compiled, entrypoint.replace(".", "/"))
            except regopy.RegoError as exc:
                raise EngineError(f"evaluating {entrypoint} failed: {_summary(str(exc))}") from None
            text = str(output)
            if not output.ok():
                raise EngineError(f"evaluating {entrypoint} failed: {_summary(text)}")
        if text.strip() == "undefined":
            return None
        expressions = json.loads(text).get("expressions", [])
        return expressions[0] if expressions else None

    def close(self) -> None:
        """Drop the compiled entry points."""
        with self._lock:
            self._compiled.clear()
