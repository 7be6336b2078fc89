"""The default embedded engine: regorus (a Rust Rego interpreter) in-process.

The bundle's modules and data are parsed when the engine is built, never per decision:
each decision only sets the input and evaluates one rule. A regorus interpreter may only
be used on the thread that created it (it panics otherwise), so each thread that decides
gets its own interpreter, built once from the same sources on its first decision; the
broker's worker pool is bounded, so this is a handful of builds for the life of a bundle.
"""

from __future__ import annotations

import json
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
    """Evaluates a bundle with regorus. Build one per bundle load; safe across threads."""

    def __init__(self, bundle: Bundle, *, include_tests: bool = False) -> None:
        """Parse every module and load the data (on this thread, to fail early).

        Raises:
            EngineError: a module does not parse or the data cannot be loaded.
        """
        self._digest = bundle.digest
        self._modules = bundle.all_modules() if include_tests else dict(bundle.modules)
        self._data = json.dumps(dict(bundle.data))
        self._local = threading.local()
        self._interpreter()

    def _interpreter(self) -> Any:
        engine = getattr(self._local, "engine", None)
        if engine is None:
            engine = regorus.Engine()
            try:
                for path, source in self._modules.items():
                    engine.add_policy(path, source)
                engine.add_data_json(self._data)
            except RuntimeError as exc:
                raise EngineError(f"the policy does not compile: {_first_line(exc)}") from None
            self._local.engine = engine
        return engine

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
        engine = self._interpreter()
        try:
            engine.set_input(input_document)
            return engine.eval_rule(f"data.{entrypoint}")
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - a Rust panic is a BaseException
            raise EngineError(f"evaluating {entrypoint} failed: {_first_line(exc)}") from None

    def close(self) -> None:
        """Drop this thread's interpreter; other threads' go with the engine object."""
        self._local = threading.local()
