"""The default embedded engine: regorus (a Rust Rego interpreter) in-process.

The bundle's modules and data are parsed once, when the engine is built; every decision
only sets the input and evaluates one rule. The interpreter is not safe to share between
threads, so evaluations are serialised by a lock.
"""

from __future__ import annotations

import threading
from typing import Any

import regorus

from policies.bundle import Bundle
from policies.errors import EngineError

__all__ = ["RegorusEngine"]


def _first_line(exc: BaseException) -> str:
    # regorus appends a native stack trace; the message and its source pointer come first.
    text = str(exc).split("Stack backtrace:")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[:4]) if lines else type(exc).__name__


class RegorusEngine:
    """Evaluates a bundle with regorus. Build one per bundle load."""

    def __init__(self, bundle: Bundle, *, include_tests: bool = False) -> None:
        """Parse every module and load the data.

        Raises:
            EngineError: a module does not parse or the data cannot be loaded.
        """
        self._digest = bundle.digest
        self._lock = threading.Lock()
        self._engine = regorus.Engine()
        modules = bundle.all_modules() if include_tests else dict(bundle.modules)
        try:
            for path, source in modules.items():
                self._engine.add_policy(path, source)
            self._engine.add_data(dict(bundle.data))
        except RuntimeError as exc:
            raise EngineError(f"the policy does not compile: {_first_line(exc)}") from None

    @property
    def name(self) -> str:
        return "regorus"

    @property
    def digest(self) -> str:
        return self._digest

    def evaluate(self, entrypoint: str, input_document: Any) -> Any:
        """The rule's value, or None when undefined.

        Raises:
            EngineError: the evaluation failed (for example a built-in error).
        """
        with self._lock:
            try:
                self._engine.set_input(input_document)
                return self._engine.eval_rule(f"data.{entrypoint}")
            except (RuntimeError, ValueError, TypeError) as exc:
                raise EngineError(f"evaluating {entrypoint} failed: {_first_line(exc)}") from None

    def close(self) -> None:
        """Nothing to release: the interpreter goes with the object."""
