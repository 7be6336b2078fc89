"""Every engine against the plain-Python oracle on the same 2,000 random requests.

What is compared is the final typed decision the broker gets (``decide_family``: the
engine's normalised answer, checked and expanded into one exchange per (agency, person)),
dumped to JSON without the bundle digest and engine name, against the oracle's decision.
"""

from __future__ import annotations

import collections
from typing import Any

import pytest

from policies._opa import OpaServerEngine
from policies._regopy import RegopyEngine
from policies._regorus import RegorusEngine
from policies.bundle import Bundle
from policies.decide import decide_family
from policies.engine import PolicyEngine
from policies.model import FamilyQueryInput
from policies.opa_standin import OpaStandin
from tests.policies.oracle import Oracle

Corpus = list[FamilyQueryInput]


def _decided(engine: PolicyEngine, query: FamilyQueryInput) -> dict[str, Any]:
    decision = decide_family(engine, query).model_dump(mode="json")
    del decision["bundle_digest"], decision["engine"]
    return decision


def _mismatches(engine: PolicyEngine, corpus: Corpus, oracle: Oracle) -> list[int]:
    return [
        i
        for i, query in enumerate(corpus)
        if _decided(engine, query) != oracle.decide(query.to_document())
    ]


def test_corpus_exercises_every_outcome(corpus: Corpus, oracle: Oracle) -> None:
    # A corpus that never reaches a rule would let that rule go untested.
    seen: collections.Counter[str] = collections.Counter()
    for query in corpus:
        decision = oracle.decide(query.to_document())
        seen.update(r["code"] for r in decision["submit"]["reasons"])
        for ex in decision["exchanges"]:
            seen["allow" if ex["allow"] else "deny"] += 1
            seen.update(w["code"] for w in ex["withheld"])
            seen.update(o["code"] for o in ex["obligations"])
    for code in [
        "allow",
        "deny",
        "request_permitted",
        "unknown_purpose",
        "role_not_permitted",
        "gateway_required",
        "legal_basis_not_for_purpose",
        "case_reference_required",
        "justification_required",
        "break_glass_expired",
        "no_active_agreement",
        "agreement_suspended",
        "agreement_not_yet_in_force",
        "agreement_expired",
        "agency_type_not_in_purpose",
        "consent_not_sought",
        "consent_expired",
        "consent_refused_no_override",
        "field_not_offered",
        "not_in_purpose",
        "not_in_agreement",
        "break_glass_reduced_set",
        "known_to_service_only",
        "restricted_by_person",
        "special_category_no_condition",
        "offence_data_no_condition",
        "consent_not_sought_reason_missing",
        "record_consent_override",
        "alert_ig_immediately",
    ]:
        assert seen[code] > 0, f"the corpus never produces {code}"


def test_embedded_engine_matches_the_oracle(
    corpus: Corpus, oracle: Oracle, embedded: RegorusEngine
) -> None:
    assert len(corpus) >= 2000
    assert embedded.compiled, "the embedded engine must be tested as the broker runs it"
    assert _mismatches(embedded, corpus, oracle) == []


def test_embedded_interpreter_matches_the_oracle(
    corpus: Corpus, oracle: Oracle, interpreter: RegorusEngine
) -> None:
    assert not interpreter.compiled
    assert _mismatches(interpreter, corpus, oracle) == []


@pytest.mark.slow
def test_opa_server_engine_over_http_matches_the_oracle(
    corpus: Corpus, oracle: Oracle, bundle: Bundle, standin: OpaStandin
) -> None:
    engine = OpaServerEngine(bundle, standin.url)
    try:
        assert _mismatches(engine, corpus, oracle) == []
    finally:
        engine.close()


@pytest.mark.slow
def test_regopy_engine_matches_the_oracle_on_a_sample(
    corpus: Corpus, oracle: Oracle, bundle: Bundle
) -> None:
    # regopy takes ~40 ms a decision; a tenth of the corpus keeps the suite lean.
    assert _mismatches(RegopyEngine(bundle), corpus[::10], oracle) == []
