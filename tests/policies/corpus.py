"""Random family-query inputs for the property tests and the benchmark.

Values are drawn near the edges the rules care about: agreements that start or end
around the request time, consent that expires just before or after it, conditions that
do or do not fit the purpose, break-glass that has or has not run out.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from policies.model import FamilyQueryInput

NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
PURPOSES = [
    "early_help_assessment",
    "child_in_need_assessment",
    "child_protection_enquiry",
    "youth_offending_assessment",
    "marketing",
]
ROLES = [
    "social_worker",
    "team_manager",
    "early_help_worker",
    "yot_officer",
    "duty_social_worker",
    "clerk",
]
GATEWAYS = [
    "ca1989_s17",
    "ca1989_s47",
    "ca2004_s10",
    "ca2004_s11",
    "cda1998_s115",
    "dea2017_s35",
    "made_up",
    None,
    " ",
]
CONDITIONS = ["art9_2_g_para18", "art9_2_h", "art10_para18", "art10_para10", "art6_nonsense"]
AGENCY_TYPES = [
    "school",
    "health",
    "police",
    "housing",
    "childrens_social_care",
    "youth_justice",
    "dwp",
]
FIELDS = {
    "education.attendance_rate": "ordinary",
    "education.exclusions_12m": "ordinary",
    "education.sen_status": "special_category",
    "health.gp_registered": "ordinary",
    "health.mental_health_referral": "special_category",
    "health.substance_misuse_service": "special_category",
    "housing.tenancy_status": "ordinary",
    "housing.rent_arrears": "ordinary",
    "police.domestic_abuse_incidents_12m": "criminal_offence",
    "police.missing_episodes_12m": "ordinary",
    "csc.open_case": "ordinary",
    "csc.child_protection_plan": "ordinary",
    "yjs.open_order": "criminal_offence",
}
STATES = ["given", "withdrawn", "expired", "refused", "not_sought"]
REQUESTER = "la-csc"


def _near(rng: random.Random) -> str:
    delta = rng.choice([-400, -30, -1, 0, 1, 30, 400])
    return (NOW + timedelta(days=delta, minutes=rng.choice([-1, 0, 1]))).isoformat()


def _sample(rng: random.Random, items: list[str], most: int) -> list[str]:
    return rng.sample(items, rng.randint(0, min(most, len(items))))


def _agreement(rng: random.Random, provider: str, index: int) -> dict[str, object]:
    return {
        "id": f"dsa-{provider}-{rng.randint(0, 1) if index else 0}",
        "version": rng.randint(1, 3),
        "parties": rng.choice([[REQUESTER, provider]] * 5 + [["la-other", provider]]),
        "purposes": PURPOSES[:4] if rng.random() < 0.85 else _sample(rng, PURPOSES[:4], 3),
        "legal_bases": (
            ["consent", *[g for g in GATEWAYS[:6] if g]]
            if rng.random() < 0.85
            else _sample(rng, ["consent", *[g for g in GATEWAYS[:6] if g]], 5)
        ),
        "fields": _sample(rng, list(FIELDS), 13),
        "valid_from": rng.choice(["2025-01-01T00:00:00+00:00"] * 3 + [_near(rng)]),
        "valid_to": rng.choice([None, None, _near(rng)]),
        "status": rng.choice(["active"] * 6 + ["suspended", "draft", "ended"]),
    }


def _person(rng: random.Random, ref: str, provider: str, purpose: str) -> dict[str, object]:
    consents = [
        {
            "purpose": rng.choice([purpose, purpose, PURPOSES[0]]),
            "agency_id": rng.choice([provider, provider, "elsewhere"]),
            "state": rng.choice(["given", "given", *STATES]),
            "expires_at": rng.choice([None, _near(rng)]),
        }
        for _ in range(rng.randint(0, 3))
    ]
    return {"ref": ref, "consents": consents, "restricted_fields": _sample(rng, list(FIELDS), 2)}


_PLAUSIBLE = {
    "early_help_assessment": (
        ["early_help_worker", "social_worker"],
        ["consent", "ca2004_s10", "dea2017_s35"],
    ),
    "child_in_need_assessment": (
        ["social_worker", "team_manager"],
        ["consent", "ca1989_s17", "ca2004_s10"],
    ),
    "child_protection_enquiry": (["social_worker", "team_manager"], ["ca1989_s47", "ca2004_s11"]),
    "youth_offending_assessment": (["yot_officer", "team_manager"], ["consent", "cda1998_s115"]),
}


def _make_plausible(rng: random.Random, request: dict[str, object]) -> None:
    # Most real requests are well formed; bias the corpus so that the exchange rules,
    # not only the submit check, are exercised.
    purpose = rng.choice(list(_PLAUSIBLE))
    roles, bases = _PLAUSIBLE[purpose]
    basis = rng.choice(bases)
    request.update(
        purpose=purpose,
        legal_basis="consent" if basis == "consent" else "public_task",
        gateway=None if basis == "consent" else basis,
        case_reference="CASE-1",
        justification="Concerns raised by school.",
    )
    requester = dict(request["requester"])  # type: ignore[call-overload]
    requester["role"] = rng.choice(roles)
    request["requester"] = requester
    if request["break_glass"] is not None and rng.random() < 0.7:
        requester["role"] = "duty_social_worker" if rng.random() < 0.5 else "team_manager"
        request["break_glass"] = {
            "reason_code": "missing_child",
            "text": "Child missing overnight.",
            "started_at": (NOW - timedelta(minutes=rng.choice([0, 60, 239]))).isoformat(),
        }


def random_query(
    rng: random.Random, *, providers: int | None = None, persons: int | None = None
) -> FamilyQueryInput:
    """One random family-query input."""
    purpose = rng.choice(PURPOSES)
    glass = None
    if rng.random() < 0.2:
        glass = {
            "reason_code": rng.choice(["missing_child", "immediate_risk_of_harm", "boredom"]),
            "text": rng.choice(["Child missing overnight.", "", "  "]),
            "started_at": (
                NOW - timedelta(minutes=rng.choice([0, 60, 239, 240, 241, 600]))
            ).isoformat(),
        }
    request = {
        "requester": {
            "agency_id": REQUESTER,
            "agency_type": "childrens_social_care",
            "role": rng.choice(ROLES),
        },
        "purpose": purpose,
        "legal_basis": rng.choice(["consent", "public_task", "public_task"]),
        "gateway": rng.choice(GATEWAYS),
        "case_reference": rng.choice(["CP-1", None, "", "CIN-7"]),
        "justification": rng.choice(["Concerns raised by school.", "Concern.", ""])
        if rng.random() < 0.9
        else "",
        "conditions": _sample(rng, CONDITIONS, 3),
        "consent_not_sought_reason": rng.choice(
            [None, "cannot_be_given", "would_prejudice_protection", "unknown_reason"]
        ),
        "override_reason": rng.choice([None, None, "", "Risk outweighs refusal."]),
        "break_glass": glass,
        "time": NOW.isoformat(),
    }
    if rng.random() < 0.75:
        _make_plausible(rng, request)
    provider_docs = []
    for index in range(providers if providers is not None else rng.randint(1, 4)):
        agency = f"ag{index}"
        offered = _sample(rng, list(FIELDS), 8)
        provider_docs.append(
            {
                "agency_id": agency,
                "agency_type": rng.choice([*AGENCY_TYPES[:6], *AGENCY_TYPES]),
                "agreements": [
                    _agreement(rng, agency, i) for i in range(rng.choice([0, 1, 1, 2, 3]))
                ],
                "fields": [
                    {"name": f, "sensitivity": rng.choice([FIELDS[f], FIELDS[f], "ordinary"])}
                    for f in offered
                ],
                "requested_fields": _sample(rng, list(FIELDS), 8),
                "persons": [
                    _person(rng, f"p{j}", agency, purpose)
                    for j in range(persons if persons is not None else rng.randint(1, 3))
                ],
            }
        )
    return FamilyQueryInput.model_validate({"request": request, "providers": provider_docs})
