"""The agency's local policy has the last word, and its refusals are signed answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.errors import ConfigError
from connectors.local_policy import RegoLocalPolicy
from connectors.protocol.messages import FetchResponse, MatchResponse
from connectors.service import AuditKind, PolicyInput, PolicyPerson
from tests.connectors.service_kit import AGENCIES, build_rig, fetch_request, match_request

pytestmark = pytest.mark.anyio

SIX = ("benefits", "education", "health", "housing", "police", "social_care")


async def test_a_refused_purpose_is_a_signed_refusal_and_reads_nothing() -> None:
    rig = build_rig()
    request = match_request(purpose="marketing")
    async with rig.client() as client:
        response = await client.post(
            "/v1/match", content=rig.broker.seal(request, "police").to_bytes()
        )
    assert response.status_code == 200
    answer = rig.open_answer(response.content, MatchResponse)
    assert answer.status == "refused"
    assert answer.refusal is not None
    assert (answer.refusal.scope, answer.refusal.code) == ("purpose", "purpose-not-accepted")
    assert "marketing" in answer.refusal.reason
    assert answer.candidates == []
    assert rig.source.reads == []
    [event] = rig.audit.events
    assert event.kind is AuditKind.REFUSAL
    assert event.reasons == ("purpose:purpose-not-accepted",)
    assert event.policy_digest is not None
    assert event.policy_digest.startswith("sha256:")


async def test_a_refused_requester_gets_a_refusal_on_fetch() -> None:
    rig = build_rig()
    request = fetch_request({"pol-0001-ann": ["police.callouts_12m"]}, requester_agency="benefits")
    async with rig.client() as client:
        response = await client.post(
            "/v1/fetch", content=rig.broker.seal(request, "police").to_bytes()
        )
    answer = rig.open_answer(response.content, FetchResponse)
    assert answer.status == "refused"
    assert answer.refusal is not None
    assert answer.refusal.code == "no-sharing-agreement"
    assert answer.persons == []
    assert answer.decision_digest == request.decision_digest
    assert [r[0] for r in rig.source.reads] == ["flags"]


async def test_a_person_under_live_investigation_is_refused_even_under_break_glass() -> None:
    rig = build_rig()
    request = fetch_request(
        {
            "pol-0002-bob": ["police.callouts_12m"],
            "pol-0001-ann": ["police.callouts_12m"],
        },
        break_glass=True,
    )
    async with rig.client() as client:
        response = await client.post(
            "/v1/fetch", content=rig.broker.seal(request, "police").to_bytes()
        )
    answer = rig.open_answer(response.content, FetchResponse)
    bob, ann = answer.persons
    assert bob.refusal is not None
    assert (bob.refusal.scope, bob.refusal.code) == ("person", "live-investigation")
    assert bob.facts == []
    assert [f.value for f in ann.facts] == [5]
    # Bob's values were never read.
    assert rig.source.reads[-1] == ("fetch", ["pol-0001-ann"], ["police.callouts_12m"])
    assert "person:live-investigation" in rig.audit.events[-1].reasons


async def test_a_field_is_withheld_by_role_and_released_under_break_glass() -> None:
    rig = build_rig()
    field = "police.domestic_abuse_incidents_12m"
    asked = {"pol-0001-ann": [field, "police.callouts_12m"]}
    plain = fetch_request(
        asked, purpose="early_help_assessment", requester_role="early_help_worker"
    )
    urgent = fetch_request(
        asked,
        purpose="early_help_assessment",
        requester_role="early_help_worker",
        break_glass=True,
    )
    async with rig.client() as client:
        first = await client.post("/v1/fetch", content=rig.broker.seal(plain, "police").to_bytes())
        second = await client.post(
            "/v1/fetch", content=rig.broker.seal(urgent, "police").to_bytes()
        )
    [person] = rig.open_answer(first.content, FetchResponse).persons
    assert [f.field for f in person.facts] == ["police.callouts_12m"]
    assert [(w.field, w.code) for w in person.withheld] == [(field, "role-not-permitted")]
    assert rig.source.reads[1] == ("fetch", ["pol-0001-ann"], ["police.callouts_12m"])
    [person] = rig.open_answer(second.content, FetchResponse).persons
    assert sorted(f.field for f in person.facts) == sorted([field, "police.callouts_12m"])


@pytest.mark.parametrize("agency", SIX)
def test_each_agency_policy_loads_and_refuses_an_unknown_purpose(agency: str) -> None:
    policy = RegoLocalPolicy.from_file(
        AGENCIES / f"{agency}.rego", package=f"junction.local.{agency}"
    )
    verdict = policy.decide(
        PolicyInput("match", agency, "childrens_social_care", None, "marketing", None, False, ())
    )
    assert verdict.refusal is not None
    assert verdict.refusal.code == "purpose-not-accepted"


@pytest.mark.parametrize(
    ("agency", "flag", "code"),
    [
        ("social_care", "adoption_sealed", "sealed-record"),
        ("health", "refuge", "refuge-protected"),
        ("housing", "refuge", "refuge-protected"),
        ("education", "refuge", "refuge-protected"),
        ("benefits", "refuge", "refuge-protected"),
        ("police", "live_investigation", "live-investigation"),
    ],
)
def test_each_agency_protects_its_flagged_people(agency: str, flag: str, code: str) -> None:
    policy = RegoLocalPolicy.from_file(
        AGENCIES / f"{agency}.rego", package=f"junction.local.{agency}"
    )
    persons = (
        PolicyPerson("ref-protected", frozenset({flag})),
        PolicyPerson("ref-ordinary", frozenset()),
    )
    verdict = policy.decide(
        PolicyInput(
            "fetch",
            agency,
            "childrens_social_care",
            "social_worker",
            "child_protection_enquiry",
            "ca1989_s47",
            False,
            persons,
        )
    )
    assert verdict.refusal is None
    assert {ref: r.code for ref, r in verdict.persons.items()} == {"ref-protected": code}


def test_a_policy_that_does_not_compile_stops_start_up(tmp_path: Path) -> None:
    broken = tmp_path / "broken.rego"
    broken.write_text("package junction.local.broken\n\ndecision := {\n")
    with pytest.raises(ConfigError, match=r"broken\.rego"):
        RegoLocalPolicy.from_file(broken, package="junction.local.broken")


def test_a_policy_without_a_decision_stops_start_up(tmp_path: Path) -> None:
    empty = tmp_path / "empty.rego"
    empty.write_text("package junction.local.empty\n\nimport rego.v1\n\nx := 1\n")
    with pytest.raises(ConfigError, match="undefined"):
        RegoLocalPolicy.from_file(empty, package="junction.local.empty")


def test_a_missing_policy_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the local policy"):
        RegoLocalPolicy.from_file(tmp_path / "nope.rego", package="junction.local.nope")


async def test_a_decision_of_the_wrong_shape_refuses_to_answer(tmp_path: Path) -> None:
    odd = tmp_path / "odd.rego"
    odd.write_text(
        "package junction.local.odd\n\nimport rego.v1\n\n"
        'decision := {"request": [{"scope": "galaxy", "code": "x", "reason": "y"}]} if {\n'
        '\tinput.operation != "check"\n}\n\n'
        'decision := {} if input.operation == "check"\n'
    )
    rig = build_rig(policy=RegoLocalPolicy.from_file(odd, package="junction.local.odd"))
    async with rig.client() as client:
        response = await client.post(
            "/v1/match", content=rig.broker.seal(match_request(), "police").to_bytes()
        )
    assert response.status_code == 503
    assert response.json()["type"] == "urn:junction:problem:local-policy-error"
    assert rig.source.reads == []


def _policy(tmp_path: Path, decision: str) -> Path:
    path = tmp_path / "agency.rego"
    path.write_text(f"package junction.local.agency\n\nimport rego.v1\n\n{decision}\n")
    return path


def test_a_misspelt_decision_member_stops_start_up(tmp_path: Path) -> None:
    # "field" for "fields": the withholdings would be read as none, and released.
    path = _policy(
        tmp_path,
        'decision := {"field": [w | some p in input.persons; some f in p.fields; '
        'w := {"ref": p.ref, "field": f, "code": "withheld", "reason": "no"}]}',
    )
    with pytest.raises(ConfigError) as raised:
        RegoLocalPolicy.from_file(path, package="junction.local.agency")
    assert raised.value.detail == (
        f"{path}: decision.field: not a known member; did you mean 'fields'? "
        "(the decision's shape is in the agency guide)"
    )


def test_a_decision_of_sets_stops_start_up_and_says_to_write_arrays(tmp_path: Path) -> None:
    path = _policy(
        tmp_path,
        "withheld contains w if {\n\tsome p in input.persons\n\tsome f in p.fields\n"
        '\tw := {"ref": p.ref, "field": f, "code": "withheld", "reason": "no"}\n}\n\n'
        'decision := {"fields": withheld}',
    )
    with pytest.raises(ConfigError) as raised:
        RegoLocalPolicy.from_file(path, package="junction.local.agency")
    assert raised.value.detail == (
        f"{path}: decision.fields is a set; write an array: [x | some x in fields]"
    )


def test_a_decision_whose_list_is_no_list_stops_start_up(tmp_path: Path) -> None:
    path = _policy(tmp_path, 'decision := {"fields": "all"}')
    with pytest.raises(ConfigError) as raised:
        RegoLocalPolicy.from_file(path, package="junction.local.agency")
    assert raised.value.detail == (
        f"{path}: decision.fields: Input should be a valid list "
        "(the decision's shape is in the agency guide)"
    )


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        (
            '{"ref": p.ref, "field": f, "code": "withheld"}',
            "decision.fields.0.reason: Field required",
        ),
        (
            '{"ref": p.ref, "field": f, "code": "Withheld!", "reason": "no"}',
            "decision.fields.0.code: String should match pattern '^[a-z][a-z0-9_-]{1,62}$'",
        ),
    ],
)
async def test_a_wrongly_shaped_withholding_is_named_in_one_line(
    tmp_path: Path, item: str, problem: str
) -> None:
    path = _policy(
        tmp_path,
        f'decision := {{"fields": [w | some p in input.persons; some f in p.fields; w := {item}]}}',
    )
    rig = build_rig(policy=RegoLocalPolicy.from_file(path, package="junction.local.agency"))
    request = fetch_request({"pol-0001-ann": ["police.callouts_12m"]})
    async with rig.client() as client:
        response = await client.post(
            "/v1/fetch", content=rig.broker.seal(request, "police").to_bytes()
        )
    assert response.status_code == 503
    assert response.json()["type"] == "urn:junction:problem:local-policy-error"
    assert response.json()["detail"] == (
        f"{path}: {problem} (the decision's shape is in the agency guide)"
    )
    assert [read for read in rig.source.reads if read[0] == "fetch"] == []
