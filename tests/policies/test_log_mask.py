"""Decision-log masking: an OPA server that logs decisions keeps no free text and no person.

The bundle's ``data.system.log.mask`` is asked as OPA asks it, with the whole log event
as input, and its pointers are removed as OPA removes them; what is left must hold none
of the caseworker's texts and none of the people's references.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from policies._opa import OpaServerEngine
from policies._regopy import RegopyEngine
from policies._regorus import RegorusEngine
from policies.bundle import Bundle
from policies.decide import FAMILY_ENTRYPOINT
from policies.engine import PolicyEngine
from policies.opa_standin import OpaStandin
from tests.policies.factories import family_query

MASK = "system.log.mask"
TEXTS = {
    "justification": "Mia Hart (7) came to school with bruising; s47 enquiry opened.",
    "case_reference": "CP-2026-0042 Hart",
    "override_reason": "Mia's father refused; the risk to her outweighs his refusal.",
    "break_glass": "Mia missing overnight from 14 Elm Road.",
}
PEOPLE = ("child-1", "adult-1")


def _logged_decision(engine: PolicyEngine) -> dict[str, Any]:
    """The decision log event OPA would write for one break-glass family decision."""
    query = family_query(
        requester={
            "agency_id": "la-csc",
            "agency_type": "childrens_social_care",
            "role": "duty_social_worker",
        },
        justification=TEXTS["justification"],
        case_reference=TEXTS["case_reference"],
        override_reason=TEXTS["override_reason"],
        break_glass={
            "reason_code": "missing_child",
            "text": TEXTS["break_glass"],
            "started_at": datetime(2026, 6, 1, 9, 30, tzinfo=UTC),
        },
    )
    document = query.to_document()
    return {
        "decision_id": "4ca636c1-55e4-417a-b1d8-4aceb67960d1",
        "path": FAMILY_ENTRYPOINT.replace(".", "/"),
        "input": document,
        "result": engine.evaluate(FAMILY_ENTRYPOINT, document),
        "timestamp": "2026-06-01T10:00:00Z",
    }


def _erase(event: dict[str, Any], pointers: list[str]) -> dict[str, Any]:
    """``event`` with each pointer removed in turn, as OPA's decision logger does: a
    pointer to something absent is skipped; the removed ones are listed in "erased"."""
    masked: dict[str, Any] = json.loads(json.dumps(event))
    erased = []
    for pointer in pointers:
        *route, last = pointer.strip("/").split("/")
        node: Any = masked
        for step in route:
            if isinstance(node, list) and step.isdigit() and int(step) < len(node):
                node = node[int(step)]
            elif isinstance(node, dict) and step in node:
                node = node[step]
            else:
                break
        else:
            if isinstance(node, dict) and last in node:
                del node[last]
            elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
                del node[int(last)]
            else:
                continue
            erased.append(pointer)
    return {**masked, "erased": erased}


@pytest.fixture(params=["regorus", "regopy"])
def engine(request: pytest.FixtureRequest, bundle: Bundle) -> PolicyEngine:
    return RegorusEngine(bundle) if request.param == "regorus" else RegopyEngine(bundle)


def test_a_logged_family_decision_keeps_no_free_text_and_no_person(
    engine: PolicyEngine,
) -> None:
    event = _logged_decision(engine)
    assert event["result"]["submit"]["allow"] is True
    before = json.dumps(event)
    assert all(text in before for text in TEXTS.values())
    assert all(f'"{ref}"' in before for ref in PEOPLE)

    pointers = sorted(engine.evaluate(MASK, event))
    logged = _erase(event, pointers)

    assert {
        "/input/request/justification",
        "/input/request/case_reference",
        "/input/request/override_reason",
        "/input/request/break_glass/text",
        "/input/providers/0/persons",
        "/result/agencies/0/persons",
    } <= set(logged["erased"])
    kept = json.dumps(logged)
    assert not [text for text in TEXTS.values() if text in kept]
    assert not [ref for ref in PEOPLE if f'"{ref}"' in kept]
    assert "Hart" not in kept
    assert "Mia" not in kept
    # What audits the decision stays: the request's codes and the exchanges decided.
    request = logged["input"]["request"]
    assert request["purpose"] == "child_protection_enquiry"
    assert request["break_glass"]["reason_code"] == "missing_child"
    assert logged["result"]["submit"] == event["result"]["submit"]
    assert (
        logged["result"]["agencies"][0]["templates"]
        == (event["result"]["agencies"][0]["templates"])
    )


def test_an_opa_server_is_given_the_masking_rule(bundle: Bundle, standin: OpaStandin) -> None:
    engine = OpaServerEngine(bundle, standin.url)
    try:
        event = _logged_decision(engine)
        held = requests.get(f"{standin.url}/v1/policies", timeout=5).json()["result"]
        assert "junction-rego-system-log" in {p["id"] for p in held}
        answer = requests.post(
            f"{standin.url}/v1/data/system/log/mask", json={"input": event}, timeout=5
        )
        answer.raise_for_status()
    finally:
        engine.close()
    pointers = answer.json()["result"]
    assert sorted(pointers) == sorted(RegorusEngine(bundle).evaluate(MASK, event))
    assert "/input/request/justification" in pointers
