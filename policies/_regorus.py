"""The default embedded engine: regorus (a Rust Rego engine) in-process.

regorus evaluates Rego two ways: an interpreter that walks the policy's syntax tree, and
a compiler to a register-based virtual machine (the RVM) that runs about twice as fast.
Entry points named in ``compiled`` run on the RVM; every other rule (the Rego unit tests,
connectors' local policies) on the interpreter, which supports the whole language. The
RVM compiler does not take every construct (``with``, for one) and has known
differences on undefined values inside comprehensions, so an entry point is only compiled
when its policy has been checked against the interpreter: the shipped family policy is,
by a property test over thousands of random queries against a plain-Python oracle. Any
"<undefined>" that the RVM leaves in an answer is refused as an engine error (it would
otherwise look like a string), so the caller denies.

The bundle's modules and data are parsed, and compiled entry points compiled, when the
engine is built, never per decision: each decision only sets the input and evaluates one
rule. A regorus interpreter or RVM may only be used on the thread that created it (it
panics otherwise), so each thread that decides gets its own, built once from the same
sources on its first decision; the broker's worker pool is bounded, so this is a handful
of builds for the life of a bundle.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import regorus

from policies.bundle import Bundle
from policies.errors import EngineError

__all__ = ["RegorusEngine"]

# How the RVM writes a value it could not define (also the whole answer when the rule is).
_UNDEFINED = '"<undefined>"'
# How the RVM says it has run out of its (fixed) instruction budget.
_INSTRUCTION_LIMIT = "exceeded maximum instruction limit"


def _first_line(exc: BaseException) -> str:
    # regorus appends a native stack trace; the message and its source pointer come first.
    text = str(exc).split("Stack backtrace:")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines[:4]) if lines else type(exc).__name__


class RegorusEngine:
    """Evaluates a bundle with regorus. Build one per bundle load; safe across threads."""

    def __init__(
        self, bundle: Bundle, *, include_tests: bool = False, compiled: Iterable[str] = ()
    ) -> None:
        """Parse every module, load the data and compile the ``compiled`` entry points
        (written like ``junction.family.decision``), on this thread, to fail early.

        Raises:
            EngineError: a module does not parse, the data cannot be loaded, or an entry
                point cannot be compiled.
        """
        self._digest = bundle.digest
        self._modules = bundle.all_modules() if include_tests else dict(bundle.modules)
        self._data = json.dumps(dict(bundle.data))
        self._compiled = frozenset(compiled)
        self._local = threading.local()
        self._interpreter()
        for entrypoint in self._compiled:
            self._machine(entrypoint)

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

    def _machine(self, entrypoint: str) -> Any:
        machines: dict[str, Any] | None = getattr(self._local, "machines", None)
        if machines is None:
            machines = self._local.machines = {}
        machine = machines.get(entrypoint)
        if machine is None:
            try:
                program = regorus.Program.compile_from_modules(
                    self._data, list(self._modules.items()), [f"data.{entrypoint}"]
                )
                machine = regorus.Rvm()
                machine.load_program(program)
                machine.set_data_json(self._data)
            except RuntimeError as exc:
                raise EngineError(
                    f"{entrypoint} does not compile for the regorus virtual machine: "
                    f"{_first_line(exc)} (JUNCTION_POLICY_COMPILED=false evaluates it with "
                    "the interpreter)"
                ) from None
            machines[entrypoint] = machine
        return machine

    @property
    def compiled(self) -> frozenset[str]:
        """The entry points evaluated on the RVM."""
        return self._compiled

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
        if entrypoint in self._compiled:
            answer = self.evaluate_json(entrypoint, orjson.dumps(input_document).decode())
            return None if answer is None else orjson.loads(answer)
        engine = self._interpreter()
        return _guarded(entrypoint, engine.set_input, engine.eval_rule, input_document)

    def evaluate_json(self, entrypoint: str, input_json: str) -> str | None:
        """A compiled entry point's value as JSON text, or None when undefined.

        The input is JSON text too, so a caller holding typed models can skip building
        Python dicts on both sides.

        Raises:
            EngineError: ``entrypoint`` is not compiled, the evaluation failed, or the
                answer holds a value the RVM left undefined.
        """
        if entrypoint not in self._compiled:
            raise EngineError(f"{entrypoint} is not compiled for the regorus virtual machine")
        machine = self._machine(entrypoint)
        try:
            answer: str = _guarded(
                entrypoint, machine.set_input_json, lambda _: machine.execute(), input_json
            )
        except EngineError as exc:
            if _INSTRUCTION_LIMIT not in exc.detail:
                raise
            # The RVM stops any evaluation at a fixed instruction budget (about 30 agencies
            # in one family query); a bigger one is decided, alike, by the interpreter.
            engine = self._interpreter()
            answer = _guarded(
                entrypoint, engine.set_input_json, engine.eval_rule_as_json, input_json
            )
        if answer == _UNDEFINED:
            return None
        if _UNDEFINED in answer:
            raise EngineError(f"evaluating {entrypoint} left a value undefined in its answer")
        return answer

    def close(self) -> None:
        """Drop this thread's interpreter and machines; other threads' go with the engine."""
        self._local = threading.local()


def _guarded(
    entrypoint: str, set_input: Callable[[Any], None], evaluate: Callable[[str], Any], given: Any
) -> Any:
    """Set the input, evaluate the entry point; any failure, a Rust panic included (a
    ``BaseException``), is an ``EngineError``."""
    try:
        set_input(given)
        return evaluate(f"data.{entrypoint}")
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - a Rust panic is a BaseException
        raise EngineError(f"evaluating {entrypoint} failed: {_first_line(exc)}") from None
