"""Run a bundle's own Rego unit tests (every ``test_*`` rule in a ``*_test.rego`` file).

A test passes when its rule is ``true``; a rule that is false or undefined fails, and one
whose evaluation raises is reported as an error. The tests run in the embedded engine
with the bundle's data, exactly as OPA's ``opa test`` would run them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from policies._regorus import RegorusEngine
from policies.bundle import Bundle
from policies.errors import EngineError

__all__ = ["RegoTestReport", "RegoTestResult", "run_rego_tests"]

_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_\w+)\b", re.MULTILINE)


@dataclass(frozen=True)
class RegoTestResult:
    module: str
    name: str
    outcome: str  # "pass", "fail" or "error"
    detail: str = ""


@dataclass(frozen=True)
class RegoTestReport:
    results: tuple[RegoTestResult, ...]

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.outcome == "pass")

    @property
    def failures(self) -> tuple[RegoTestResult, ...]:
        return tuple(r for r in self.results if r.outcome != "pass")

    @property
    def ok(self) -> bool:
        """True when there is at least one test and every test passed."""
        return bool(self.results) and not self.failures

    def summary(self) -> str:
        """One line: how many passed, failed and errored."""
        failed = sum(1 for r in self.results if r.outcome == "fail")
        errors = sum(1 for r in self.results if r.outcome == "error")
        verdict = "PASS" if self.ok else "FAIL"
        return f"{verdict}: {self.passed} passed, {failed} failed, {errors} errors"


def _discover(bundle: Bundle) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for module, source in sorted(bundle.tests.items()):
        package = _PACKAGE.search(source)
        if package is None:
            continue
        names = dict.fromkeys(_TEST_RULE.findall(source))
        found.extend((module, package.group(1), name) for name in names)
    return found


def run_rego_tests(
    bundle: Bundle, *, on_result: Callable[[RegoTestResult], None] | None = None
) -> RegoTestReport:
    """Run every Rego test of the bundle and report each outcome.

    A bundle that does not compile is reported as one error result rather than raised.
    """
    tests = _discover(bundle)
    try:
        engine = RegorusEngine(bundle, include_tests=True)
    except EngineError as exc:
        return RegoTestReport((RegoTestResult("(bundle)", "compile", "error", exc.detail),))
    results: list[RegoTestResult] = []
    for module, package, name in tests:
        try:
            value = engine.evaluate(f"{package}.{name}", {})
        except EngineError as exc:
            result = RegoTestResult(module, name, "error", exc.detail)
        else:
            result = RegoTestResult(module, name, "pass" if value is True else "fail")
        results.append(result)
        if on_result is not None:
            on_result(result)
    return RegoTestReport(tuple(results))
