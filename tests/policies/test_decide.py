"""The typed decision, and deny with "policy error" whenever deciding fails."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from policies._opa import OpaServerEngine
from policies._regopy import RegopyEngine
from policies._regorus import RegorusEngine
from policies.bundle import Bundle, load_bundle
from policies.decide import decide_family
from policies.errors import EngineError
from policies.model import FamilyDecision
from policies.opa_standin import OpaStandin
from tests.policies.factories import copy_bundle, family_query


def _all_denied_for_policy_error(decision: FamilyDecision) -> None:
    assert not decision.allow
    assert [r.code for r in decision.submit.reasons] == ["policy_error"]
    assert decision.submit.reasons[0].text.startswith("policy error")
    for exchange in decision.exchanges:
        assert not exchange.allow
        assert exchange.permitted_fields == []
        assert {w.code for w in exchange.withheld} == {"policy_error"}


def test_decision_is_typed_and_cites_bundle_and_engine(embedded: RegorusEngine) -> None:
    decision = decide_family(embedded, family_query())
    assert decision.allow
    assert decision.engine == "regorus"
    assert decision.bundle_digest == embedded.digest
    child = decision.exchange("school-1", "child-1")
    assert child.permitted_fields == ["education.attendance_rate", "education.sen_status"]
    assert child.agreement is not None
    assert (child.agreement.id, child.agreement.version) == ("dsa-school-csc", 2)
    adult = decision.exchange("school-1", "adult-1")
    assert [(w.field, w.code) for w in adult.withheld] == [
        ("education.sen_status", "restricted_by_person")
    ]
    with pytest.raises(KeyError):
        decision.exchange("school-1", "nobody")


def test_trailing_z_times_work_on_regopy_too(embedded: RegorusEngine, bundle: Bundle) -> None:
    # rego-cpp rejects "...Z" in time.parse_rfc3339_ns; the typed input writes "+00:00".
    query = family_query()
    assert query.to_document()["request"]["time"] == "2026-06-01T10:00:00+00:00"
    regopy = decide_family(RegopyEngine(bundle), query)
    regorus = decide_family(embedded, query)
    assert regopy.allow
    assert regopy.exchanges == regorus.exchanges


def test_runtime_error_in_the_policy_is_a_deny(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    family = root / "rego" / "family.rego"
    family.write_text(family.read_text().replace("time.parse_rfc3339_ns(req.time)", "1 / 0"))
    decision = decide_family(RegorusEngine(load_bundle([root])), family_query())
    _all_denied_for_policy_error(decision)


class _Broken:
    """An engine seam that fails the way a real one can."""

    def __init__(self, outcome: Any) -> None:
        self._outcome = outcome

    @property
    def name(self) -> str:
        return "broken"

    @property
    def digest(self) -> str:
        return "sha256:broken"

    def evaluate(self, entrypoint: str, input_document: Any) -> Any:
        if isinstance(self._outcome, Exception):
            raise self._outcome
        return self._outcome

    def close(self) -> None:
        """Nothing held."""


@pytest.mark.parametrize(
    "outcome",
    [
        EngineError("evaluating failed"),
        RuntimeError("a bug in an engine"),
        None,
        {"submit": {"allow": True}},
        {"submit": {"allow": True, "reasons": [], "obligations": []}, "exchanges": []},
    ],
    ids=["engine-error", "unexpected-exception", "undefined", "wrong-shape", "missing-pairs"],
)
def test_every_failure_is_a_deny_never_an_exception(outcome: Any) -> None:
    decision = decide_family(_Broken(outcome), family_query())
    _all_denied_for_policy_error(decision)
    assert len(decision.exchanges) == 2


def test_opa_server_that_went_away_is_a_deny(bundle: Bundle) -> None:
    with OpaStandin() as server:
        engine = OpaServerEngine(bundle, server.url, timeout=2)
        assert decide_family(engine, family_query()).allow
    _all_denied_for_policy_error(decide_family(engine, family_query()))
    engine.close()


def test_unreachable_opa_server_is_named(bundle: Bundle) -> None:
    with OpaStandin() as server:
        url = server.url
    with pytest.raises(EngineError, match="did not take the bundle"):
        OpaServerEngine(bundle, url, timeout=2)
    with pytest.raises(EngineError, match="must look like"):
        OpaServerEngine(bundle, "localhost:8181")


def test_embedded_engine_decides_on_any_thread(embedded: RegorusEngine) -> None:
    # The broker decides from a pool of worker threads, not the thread that loaded policy.
    query = family_query()
    here = decide_family(embedded, query)
    with ThreadPoolExecutor(max_workers=3) as pool:
        there = list(pool.map(lambda _: decide_family(embedded, query), range(6)))
    assert all(d == here for d in there)
    assert here.allow
