"""The family decision compiled to regorus's virtual machine (the RVM), against the
interpreter it must agree with, and deny whenever the RVM cannot be trusted."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from policies._regorus import RegorusEngine
from policies.bundle import Bundle, load_bundle
from policies.decide import FAMILY_ENTRYPOINT, decide_family
from policies.engine import create_engine
from policies.errors import EngineError
from policies.model import FamilyDecision, FamilyQueryInput
from policies.settings import PolicySettings
from tests.policies.corpus import random_query
from tests.policies.factories import copy_bundle, family_query


def _policy_error(decision: FamilyDecision) -> bool:
    return not decision.allow and [r.code for r in decision.submit.reasons] == ["policy_error"]


def _bundle_with(tmp_path: Path, name: str, source: str) -> Bundle:
    root = copy_bundle(tmp_path)
    (root / "rego" / name).write_text(source)
    return load_bundle([root])


def test_a_large_family_is_decided_alike_by_both(
    embedded: RegorusEngine, interpreter: RegorusEngine
) -> None:
    # Far more agencies and people than the property corpus holds: more than the RVM's
    # fixed instruction budget takes, so the interpreter decides it, with the same answer.
    rng = random.Random(7)
    queries = [random_query(rng) for _ in range(40)]
    providers = [p for q in queries for p in q.to_document()["providers"]]
    for index, provider in enumerate(providers):
        provider["agency_id"] = f"ag{index}"
        for person in provider["persons"]:
            person["ref"] = f"{provider['agency_id']}-{person['ref']}"
            for record in person["consents"]:
                record["agency_id"] = provider["agency_id"]
        for agreement in provider["agreements"]:
            agreement["parties"] = ["la-csc", provider["agency_id"]]
    document = queries[0].to_document() | {"providers": providers}
    query = FamilyQueryInput.model_validate(document)
    assert len(query.providers) > 40
    assert sum(len(p.persons) for p in query.providers) > 150
    compiled = decide_family(embedded, query)
    assert not _policy_error(compiled)
    assert compiled.model_dump() == decide_family(interpreter, query).model_dump() | {
        "engine": "regorus"
    }


def test_a_family_within_the_budget_is_decided_by_the_rvm(
    embedded: RegorusEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Six agencies of twenty people each: well inside the budget, so no fallback.
    def no_fallback() -> None:
        raise AssertionError("the interpreter was asked")

    monkeypatch.setattr(embedded, "_interpreter", no_fallback)
    document = family_query().to_document()
    school = document["providers"][0]
    providers = []
    for index in range(6):
        provider = dict(school, agency_id=f"school-{index}")
        provider["persons"] = [
            {"ref": f"s{index}-p{j}", "consents": [], "restricted_fields": []} for j in range(20)
        ]
        providers.append(provider)
    query = FamilyQueryInput.model_validate(document | {"providers": providers})
    decision = decide_family(embedded, query)
    assert not _policy_error(decision)
    assert len(decision.exchanges) == 120


def test_a_value_left_undefined_inside_the_answer_is_an_engine_error(tmp_path: Path) -> None:
    # The RVM writes an element it could not define as the string "<undefined>" where
    # OPA would leave the element out; that must never pass for a field name or a ref.
    bundle = _bundle_with(
        tmp_path,
        "zz_undefined.rego",
        "package junction.probe\nimport rego.v1\n"
        'f(m, k) := v if { v := m[k] } else := "none"\n'
        "answer := [v | some k in input.keys; v := f(input.map, k)]\n",
    )
    document = {"keys": ["missing", "here"], "map": {"here": "found"}}
    engine = RegorusEngine(bundle, compiled=["junction.probe.answer"])
    with pytest.raises(EngineError, match="left a value undefined"):
        engine.evaluate("junction.probe.answer", document)
    assert RegorusEngine(bundle).evaluate("junction.probe.answer", document) == ["none", "found"]


def test_a_runtime_error_in_the_compiled_policy_is_a_deny(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    family = root / "rego" / "family.rego"
    family.write_text(family.read_text().replace("time.parse_rfc3339_ns(req.time)", "1 / 0"))
    engine = RegorusEngine(load_bundle([root]), compiled=[FAMILY_ENTRYPOINT])
    assert _policy_error(decide_family(engine, family_query()))


def test_an_entry_point_the_rvm_cannot_compile_fails_at_load(tmp_path: Path) -> None:
    bundle = _bundle_with(
        tmp_path,
        "zz_with.rego",
        "package junction.probe\nimport rego.v1\n"
        'answer := x if { x := input.a with input as {"a": 1} }\n',
    )
    with pytest.raises(EngineError, match="JUNCTION_POLICY_COMPILED=false"):
        RegorusEngine(bundle, compiled=["junction.probe.answer"])
    assert RegorusEngine(bundle).evaluate("junction.probe.answer", {}) == 1


def test_evaluate_json_takes_only_compiled_entry_points(embedded: RegorusEngine) -> None:
    with pytest.raises(EngineError, match="not compiled"):
        embedded.evaluate_json("junction.family.submit_allow", "{}")


def test_the_setting_turns_compilation_off(bundle: Bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    on = create_engine(PolicySettings(), bundle, compiled=[FAMILY_ENTRYPOINT])
    monkeypatch.setenv("JUNCTION_POLICY_COMPILED", "false")
    off = create_engine(PolicySettings(), bundle, compiled=[FAMILY_ENTRYPOINT])
    assert isinstance(on, RegorusEngine)
    assert isinstance(off, RegorusEngine)
    assert on.compiled == {FAMILY_ENTRYPOINT}
    assert off.compiled == frozenset()
    query = family_query()
    assert decide_family(on, query) == decide_family(off, query)
    assert decide_family(on, query).allow


def test_each_thread_gets_its_own_machine(embedded: RegorusEngine) -> None:
    from concurrent.futures import ThreadPoolExecutor

    query = family_query()
    here = decide_family(embedded, query)
    with ThreadPoolExecutor(max_workers=4) as pool:
        there = list(pool.map(lambda _: decide_family(embedded, query), range(12)))
    assert all(d == here for d in there)
