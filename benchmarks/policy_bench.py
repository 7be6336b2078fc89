"""Policy decision time for one family query (6 agencies x 5 people = 31 decisions).

Measures the typed call the broker makes (pre-filter the region's agreements to the two
agencies of each pair, build the input, evaluate, validate the decision) with 100 and with
10,000 agreements in the region, beside baselines measured in the same run: the same
decision on the regorus interpreter (the broker runs it compiled to regorus's virtual
machine), a trivial rule on the interpreter, and serialising the input to JSON. Also the
OPA server engine over real HTTP (against the stand-in) and the regopy engine, with fewer
iterations.

    .venv/bin/python benchmarks/policy_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policies._opa import OpaServerEngine
from policies._regopy import RegopyEngine
from policies._regorus import RegorusEngine
from policies.bundle import load_bundle
from policies.decide import FAMILY_ENTRYPOINT, decide_family
from policies.engine import PolicyEngine
from policies.model import FamilyQueryInput
from policies.opa_standin import OpaStandin
from policies.settings import DEFAULT_BUNDLE_DIR

NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
REQUESTER = "la-csc"
PROVIDERS = {
    "school": ["education.attendance_rate", "education.exclusions_12m", "education.sen_status"],
    "health": ["health.gp_registered", "health.mental_health_referral"],
    "police": ["police.domestic_abuse_incidents_12m", "police.missing_episodes_12m"],
    "housing": ["housing.tenancy_status", "housing.rent_arrears"],
    "childrens_social_care": ["csc.open_case", "csc.child_protection_plan"],
    "youth_justice": ["yjs.open_order"],
}
SENSITIVITY = {
    "education.sen_status": "special_category",
    "health.mental_health_referral": "special_category",
    "police.domestic_abuse_incidents_12m": "criminal_offence",
    "yjs.open_order": "criminal_offence",
}
Region = dict[tuple[str, str], list[dict[str, object]]]


def _agreement(rng: random.Random, number: int, a: str, b: str) -> dict[str, object]:
    fields = [f for names in PROVIDERS.values() for f in names]
    return {
        "id": f"dsa-{number:05d}",
        "version": rng.randint(1, 3),
        "parties": [a, b],
        "purposes": ["child_protection_enquiry", "child_in_need_assessment"],
        "legal_bases": ["ca1989_s47", "ca1989_s17", "consent"],
        "fields": rng.sample(fields, 9),
        "valid_from": (NOW - timedelta(days=rng.randint(1, 900))).isoformat(),
        "valid_to": None,
        "status": "active",
    }


def build_region(rng: random.Random, size: int) -> Region:
    """``size`` agreements indexed by agency pair, as the broker's registry holds them."""
    region: Region = defaultdict(list)
    agencies = [f"agency-{i:04d}" for i in range(max(20, size // 20))]
    for number in range(size):
        if number < 12:
            a, b = REQUESTER, f"provider-{number % 6}"
        else:
            a, b = rng.sample(agencies, 2)
        region[(min(a, b), max(a, b))].append(_agreement(rng, number, a, b))
    return region


def build_query(rng: random.Random, region: Region) -> FamilyQueryInput:
    """One family query: 6 provider agencies x 5 people, agreements pre-filtered."""
    providers = []
    for index, (agency_type, fields) in enumerate(PROVIDERS.items()):
        agency = f"provider-{index}"
        pair = (min(REQUESTER, agency), max(REQUESTER, agency))
        persons = [
            {
                "ref": f"{agency}-p{j}",
                "consents": [
                    {
                        "purpose": "child_protection_enquiry",
                        "agency_id": agency,
                        "state": rng.choice(["given", "given", "refused", "withdrawn"]),
                        "expires_at": (NOW + timedelta(days=rng.randint(-5, 300))).isoformat(),
                    }
                ],
                "restricted_fields": rng.sample(fields, 1) if rng.random() < 0.2 else [],
            }
            for j in range(5)
        ]
        providers.append(
            {
                "agency_id": agency,
                "agency_type": agency_type,
                "agreements": region.get(pair, []),
                "fields": [
                    {"name": f, "sensitivity": SENSITIVITY.get(f, "ordinary")} for f in fields
                ],
                "requested_fields": fields,
                "persons": persons,
            }
        )
    request = {
        "requester": {
            "agency_id": REQUESTER,
            "agency_type": "childrens_social_care",
            "role": "social_worker",
        },
        "purpose": "child_protection_enquiry",
        "legal_basis": "public_task",
        "gateway": "ca1989_s47",
        "case_reference": "CP-2026-0042",
        "justification": "Bruising reported by school.",
        "conditions": ["art9_2_g_para18", "art10_para18"],
        "consent_not_sought_reason": "would_prejudice_protection",
        "override_reason": "Risk of significant harm outweighs the refusal.",
        "time": NOW.isoformat(),
    }
    return FamilyQueryInput.model_validate({"request": request, "providers": providers})


def _times(fn: Callable[[], object], n: int, cpu: list[float] | None = None) -> list[float]:
    # Wall time is what a caller waits; thread CPU time is what the decision costs when
    # the (shared, noisy) machine is not taking the core away mid-way.
    out = []
    for _ in range(n):
        start, start_cpu = time.perf_counter(), time.thread_time()
        fn()
        out.append((time.perf_counter() - start) * 1000)
        if cpu is not None:
            cpu.append((time.thread_time() - start_cpu) * 1000)
    return out


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _typed_call(
    engine: PolicyEngine, region: Region, query: FamilyQueryInput
) -> Callable[[], object]:
    # What the broker does per query: look the pair agreements up in the region index,
    # then one typed evaluation.
    pairs = [(min(REQUESTER, p.agency_id), max(REQUESTER, p.agency_id)) for p in query.providers]

    def call() -> object:
        for pair in pairs:
            region.get(pair, [])
        return decide_family(engine, query)

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds instead of ~a minute")
    args = parser.parse_args()
    rounds, per_round, slow_n = (4, 50, 20) if args.quick else (10, 200, 100)

    bundle = load_bundle([DEFAULT_BUNDLE_DIR])
    engine = RegorusEngine(bundle, compiled=[FAMILY_ENTRYPOINT])
    interpreter = RegorusEngine(bundle)
    rng = random.Random(4)
    small, large = build_region(rng, 100), build_region(rng, 10_000)
    q_small, q_large = build_query(random.Random(5), small), build_query(random.Random(5), large)
    assert decide_family(engine, q_small).allow, "the benchmark query must be allowed"
    doc = q_small.to_document()

    typed_small, typed_large, raw, trivial, dumps, interpreted = [], [], [], [], [], []
    call_small, call_large = (
        _typed_call(engine, small, q_small),
        _typed_call(engine, large, q_large),
    )
    call_interpreted = _typed_call(interpreter, small, q_small)
    cpu_small: list[float] = []
    cpu_large: list[float] = []
    _times(call_small, 20)  # warm-up: the interpreter's first decisions allocate
    for _ in range(rounds):  # interleaved so machine noise hits every figure alike
        typed_small += _times(call_small, per_round, cpu_small)
        typed_large += _times(call_large, per_round, cpu_large)
        interpreted += _times(call_interpreted, per_round)
        raw += _times(lambda: engine.evaluate(FAMILY_ENTRYPOINT, doc), per_round)
        trivial += _times(
            lambda: interpreter.evaluate("junction.family.pair_priority", doc), per_round
        )
        dumps += _times(lambda: json.dumps(doc), per_round)

    with OpaStandin() as standin:
        opa = OpaServerEngine(bundle, standin.url)
        opa_typed = _times(_typed_call(opa, small, q_small), slow_n)
        opa_trivial = _times(lambda: opa.evaluate("junction.family.pair_priority", doc), slow_n)
        opa.close()
    regopy = RegopyEngine(bundle)
    regopy.evaluate(FAMILY_ENTRYPOINT, doc)  # compile once, as at start-up
    regopy_typed = _times(_typed_call(regopy, small, q_small), max(5, slow_n // 4))

    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores (shared, load {os.getloadavg()[0]:.1f}), "
        f"Python {platform.python_version()}"
    )
    setup = "6 agencies x 5 people, regorus RVM"
    print(f"policy decision benchmark: {machine}; {rounds * per_round} samples a figure")
    print("| figure | value | target | setup |")
    print("|---|---|---|---|")
    rows = [
        ("decision p50, 100 agreements", _p(typed_small, 0.5), "<= 2 ms", setup),
        ("decision p99, 100 agreements", _p(typed_small, 0.99), "<= 10 ms", setup),
        ("decision p50, 10,000 agreements", _p(typed_large, 0.5), "<= 3 ms", setup),
        ("decision p99, 10,000 agreements", _p(typed_large, 0.99), "-", setup),
        ("decision CPU time p50, 100 agreements", _p(cpu_small, 0.5), "-", setup + ", thread CPU"),
        ("decision CPU time p99, 100 agreements", _p(cpu_small, 0.99), "-", setup + ", thread CPU"),
        (
            "decision CPU time p50, 10,000 agreements",
            _p(cpu_large, 0.5),
            "-",
            setup + ", thread CPU",
        ),
        ("engine evaluation only p50", _p(raw, 0.5), "-", setup + ", no typing"),
        (
            "same decision, regorus interpreter p50",
            _p(interpreted, 0.5),
            "-",
            "6 agencies x 5 people, JUNCTION_POLICY_COMPILED=false",
        ),
        ("baseline: trivial rule p50", _p(trivial, 0.5), "-", "interpreter, same input"),
        ("baseline: json.dumps(input) p50", _p(dumps, 0.5), "-", f"{len(json.dumps(doc))} bytes"),
        ("OPA engine over HTTP p50", _p(opa_typed, 0.5), "-", "stand-in server on 127.0.0.1"),
        (
            "baseline: OPA trivial rule p50",
            _p(opa_trivial, 0.5),
            "-",
            "same server, HTTP round trip",
        ),
        ("regopy engine p50", _p(regopy_typed, 0.5), "-", "rego-cpp, compiled once"),
        (
            "decision mean / stdev, 100",
            statistics.fmean(typed_small),
            "-",
            f"stdev {statistics.stdev(typed_small):.2f} ms",
        ),
    ]
    for figure, value, target, detail in rows:
        print(f"| {figure} | {value:.3f} ms | {target} | {detail} |")


if __name__ == "__main__":
    main()
