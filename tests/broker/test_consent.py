"""The consent register over its API: record, withdraw, search, history, audit entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from audit.errors import StoreError
from broker.consent import repository as repo
from broker.consent.schemas import ConsentIn, ConsentTransition
from broker.identity import Role
from broker.registry.schemas import AgreementCreate
from broker.subjects import SubjectKeys
from tests.broker.foundation_kit import Broker, IssuerServer, running_broker

pytestmark = pytest.mark.anyio

NHS = {"kind": "nhs_number", "value": "943 476 5919"}
LOCAL = {"kind": "local_ref", "value": "school:UPN-778"}


def consent(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "identifiers": [NHS, LOCAL],
        "label": "J.M. (Year 8)",
        "purpose": "early_help_assessment",
        "scope": ["police", "school"],
        "given_by": "parent",
        "channel": "paper",
        "evidence_reference": "Form EH-1 #2231",
    }
    body.update(changes)
    return body


async def _agencies(broker: Broker) -> None:
    for agency, kind in (
        ("council", "local_authority"),
        ("police", "police"),
        ("school", "school"),
    ):
        body = {"id": agency, "name": agency.title(), "type": kind}
        response = await broker.client.post(
            "/v1/agencies", json=body, headers=broker.as_(Role.ADMIN)
        )
        assert response.status_code == 201


def _keys(broker: Broker) -> SubjectKeys:
    return SubjectKeys.load_or_create(
        broker.settings.subject_key_file(), broker.settings.consent_key_file()
    )


async def test_recording_and_withdrawing_consent_keeps_history_and_is_audited(
    tmp_path: Path, dev_issuer: IssuerServer, database_url: str
):
    async with running_broker(tmp_path, dev_issuer, database_url=database_url) as broker:
        await _agencies(broker)
        caseworker = broker.as_(Role.CASEWORKER, agency="council")
        recorded = await broker.client.post("/v1/consents", json=consent(), headers=caseworker)
        assert recorded.status_code == 201, recorded.text
        consent_id = recorded.json()["id"]
        withdrawn = await broker.client.post(
            f"/v1/consents/{consent_id}/transitions",
            json={"state": "withdrawn", "note": "Mother phoned to withdraw"},
            headers=broker.as_(Role.CASEWORKER, agency="school"),
        )
        again = await broker.client.post(
            f"/v1/consents/{consent_id}/transitions",
            json={"state": "withdrawn"},
            headers=caseworker,
        )
        read = await broker.client.get(
            f"/v1/consents/{consent_id}", headers=broker.as_(Role.IG_OFFICER)
        )
        entries = broker.entries("consent_change")
        keys = _keys(broker)
        with broker.app.state.foundation.db.session() as session:
            filed = set(repo.subjects(session, [consent_id])[consent_id])
    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["state"] == "given"
    assert withdrawn.json()["state"] == "withdrawn"
    assert again.status_code == 422
    assert "cannot become withdrawn" in again.json()["detail"]
    assert again.json()["current_state"] == "withdrawn"
    body = read.json()
    assert [(h["state"], h["by"]) for h in body["history"]] == [
        ("given", "dev:council:sam.okafor"),
        ("withdrawn", "dev:school:sam.okafor"),
    ]
    assert body["history"][1]["note"] == "Mother phoned to withdraw"
    assert (body["given_by"], body["channel"], body["scope"]) == (
        "parent",
        "paper",
        ["police", "school"],
    )
    assert [e.fields["reasons"] for e in entries] == [["consent_given"], ["consent_withdrawn"]]
    expected = sorted(
        [keys.reference("nhs_number", "9434765919"), keys.reference("local_ref", "school:UPN-778")]
    )
    # Both entries are filed under the subject references only: the consent references
    # the register also keeps are for the agencies' records, not for the log.
    assert [list(e.fields["subjects"]) for e in entries] == [expected, expected]
    assert filed == set(expected) | set(keys.consent_keys([("nhs_number", "9434765919")]))
    assert entries[0].fields["purpose"] == "early_help_assessment"
    assert entries[0].private["label"] == "J.M. (Year 8)"
    assert entries[0].private["evidence_reference"] == "Form EH-1 #2231"
    assert entries[1].private["note"] == "Mother phoned to withdraw"
    leaves = orjson.dumps([dict(e.fields) for e in entries])
    for secret in (b"9434765919", b"943 476 5919", b"UPN-778", b"J.M.", b"EH-1", b"phoned"):
        assert secret not in leaves


async def test_withdrawing_consent_changes_the_next_answer(
    tmp_path: Path, dev_issuer: IssuerServer, database_url: str
):
    async with running_broker(tmp_path, dev_issuer, database_url=database_url) as broker:
        await _agencies(broker)
        caseworker = broker.as_(Role.CASEWORKER)
        service = broker.app.state.consent
        person = _keys(broker).reference("nhs_number", "9434765919")
        recorded = await broker.client.post("/v1/consents", json=consent(), headers=caseworker)
        before = service.consents_for({person}, "early_help_assessment", datetime.now(UTC))
        other_purpose = service.consents_for({person}, "youth_justice", datetime.now(UTC))
        await broker.client.post(
            f"/v1/consents/{recorded.json()['id']}/transitions",
            json={"state": "withdrawn"},
            headers=caseworker,
        )
        after = service.consents_for({person}, "early_help_assessment", datetime.now(UTC))
        # A new consent, given after the withdrawal, is the person's latest word.
        await broker.client.post(
            "/v1/consents", json=consent(identifiers=[NHS], scope="all"), headers=caseworker
        )
        renewed = service.consents_for({person}, "early_help_assessment", datetime.now(UTC))
    assert [(r.agency_id, r.state) for r in before[person]] == [
        ("police", "given"),
        ("school", "given"),
    ]
    assert other_purpose == {}
    assert [(r.agency_id, r.state) for r in after[person]] == [
        ("police", "withdrawn"),
        ("school", "withdrawn"),
    ]
    assert [(r.agency_id, r.state) for r in renewed[person]] == [
        ("council", "given"),
        ("police", "given"),
        ("school", "given"),
    ]


async def test_consent_is_found_by_any_of_the_persons_identifiers(
    tmp_path: Path, dev_issuer: IssuerServer
):
    async with running_broker(tmp_path, dev_issuer) as broker:
        await _agencies(broker)
        caseworker = broker.as_(Role.CASEWORKER)
        await broker.client.post("/v1/consents", json=consent(), headers=caseworker)
        await broker.client.post(
            "/v1/consents",
            json=consent(
                identifiers=[{"kind": "upn", "value": "B801200005001"}], purpose="youth_justice"
            ),
            headers=caseworker,
        )
        by_local = await broker.client.post(
            "/v1/consents/search",
            json={"identifiers": [{"kind": "local_ref", "value": "school:UPN-778"}]},
            headers=broker.as_(Role.ADMIN),
        )
        by_nhs = await broker.client.post(
            "/v1/consents/search",
            json={"identifiers": [{"kind": "nhs_number", "value": "9434765919"}]},
            headers=caseworker,
        )
        other_purpose = await broker.client.post(
            "/v1/consents/search",
            json={"identifiers": [NHS], "purpose": "youth_justice"},
            headers=caseworker,
        )
        nobody = await broker.client.post(
            "/v1/consents/search",
            json={"identifiers": [{"kind": "nhs_number", "value": "0000000000"}]},
            headers=caseworker,
        )
    assert [c["label"] for c in by_local.json()] == ["J.M. (Year 8)"]
    assert by_nhs.json() == by_local.json()
    assert other_purpose.json() == []
    assert nobody.json() == []


async def test_looking_up_a_persons_consents_is_logged_under_them(
    tmp_path: Path, dev_issuer: IssuerServer
):
    async with running_broker(tmp_path, dev_issuer) as broker:
        await _agencies(broker)
        caseworker = broker.as_(Role.CASEWORKER, agency="school")
        recorded = await broker.client.post(
            "/v1/consents", json=consent(), headers=broker.as_(Role.CASEWORKER)
        )
        assert recorded.status_code == 201, recorded.text
        before = broker.entries("consent_lookup")
        search = {"identifiers": [NHS], "purpose": "early_help_assessment"}
        found = await broker.client.post("/v1/consents/search", json=search, headers=caseworker)
        # Finding nothing is a look-up all the same.
        nobody = {"identifiers": [{"kind": "nhs_number", "value": "0000000000"}]}
        officer = broker.as_(Role.IG_OFFICER)
        nothing = await broker.client.post("/v1/consents/search", json=nobody, headers=officer)
        lookups = broker.entries("consent_lookup")
        report = await broker.client.post(
            "/v1/oversight/subject-access",
            json={"identifiers": [NHS]},
            headers=broker.as_(Role.IG_OFFICER),
        )
    assert (found.status_code, nothing.status_code) == (200, 200)
    assert len(found.json()) == 1
    assert before == []
    first, second = lookups
    assert first.fields["actor"] == "dev:school:sam.okafor"
    assert first.fields["actor_agency"] == "school"
    assert first.fields["reasons"] == ["consent_search"]
    assert first.fields["purpose"] == "early_help_assessment"
    assert first.fields["subjects"] == [_keys(broker).reference(NHS["kind"], NHS["value"])]
    assert "9434765919" not in str(first.fields)
    assert second.fields["subjects"] == [_keys(broker).reference("nhs_number", "0000000000")]
    whats = [(a["kind"], a["what"], a["who"]) for a in report.json()["accesses"]]
    assert ("consent_lookup", "consent records looked up", "dev:school:sam.okafor") in whats


async def test_a_consent_look_up_the_log_cannot_record_shows_nothing(
    tmp_path: Path, dev_issuer: IssuerServer, monkeypatch: pytest.MonkeyPatch
):
    async with running_broker(tmp_path, dev_issuer) as broker:
        await _agencies(broker)
        caseworker = broker.as_(Role.CASEWORKER)
        await broker.client.post("/v1/consents", json=consent(), headers=caseworker)

        def full(entry: object) -> int:
            raise StoreError("disk full")

        monkeypatch.setattr(broker.audit, "append", full)
        response = await broker.client.post(
            "/v1/consents/search", json={"identifiers": [NHS]}, headers=caseworker
        )
    assert response.status_code == 503, response.text
    assert "could not record this read, so nothing is shown" in response.json()["detail"]
    assert "J.M." not in response.text


@pytest.mark.parametrize(
    ("first", "then", "allowed"),
    [
        ("not_sought", "given", True),
        ("not_sought", "refused", True),
        ("refused", "given", True),
        ("given", "refused", False),
        ("refused", "withdrawn", False),
        ("not_sought", "withdrawn", False),
    ],
)
async def test_only_meaningful_state_changes_are_accepted(
    tmp_path: Path, dev_issuer: IssuerServer, first: str, then: str, allowed: bool
):
    async with running_broker(tmp_path, dev_issuer) as broker:
        await _agencies(broker)
        caseworker = broker.as_(Role.CASEWORKER)
        body = consent(state=first, channel="phone", note="Not asked: urgent safeguarding")
        recorded = await broker.client.post("/v1/consents", json=body, headers=caseworker)
        changed = await broker.client.post(
            f"/v1/consents/{recorded.json()['id']}/transitions",
            json={"state": then},
            headers=caseworker,
        )
        entries = broker.entries("consent_change")
    assert recorded.json()["state"] == first
    if allowed:
        assert changed.status_code == 200
        assert [h["state"] for h in changed.json()["history"]] == [first, then]
        assert len(entries) == 2
    else:
        assert changed.status_code == 422
        assert changed.json()["type"] == "urn:junction:problem:invalid-change"
        assert len(entries) == 1


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"identifiers": [{"kind": "local_ref", "value": "UPN-778"}]}, "'<agency>:<reference>'"),
        ({"identifiers": [{"kind": "passport", "value": "X"}]}, "identifiers.0.kind"),
        ({"identifiers": [{"kind": "nhs_number", "value": "abc"}]}, "identifiers.0.value"),
        ({"identifiers": [NHS, {"kind": "upn", "value": "A123"}]}, "identifiers.1.value"),
        ({"identifiers": [{"kind": "ni_number", "value": "QQ123456C"}]}, "identifiers.0.value"),
        ({"identifiers": []}, "identifiers"),
        ({"scope": []}, "at least one agency"),
        ({"channel": "email"}, "channel"),
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at is in the past"),
        ({"state": "withdrawn"}, "state"),
        ({"state": "not_sought"}, "say why consent was not sought"),
        # A misspelt purpose, agency or field would be recorded and never match anything:
        # a refusal that silently lets every agency share.
        ({"purpose": "early_help"}, "did you mean 'early_help_assessment'?"),
        ({"purpose": "holiday_club"}, "'holiday_club' is not in the policy catalogue"),
        ({"scope": ["police", "polic"]}, "agency 'polic' is not registered; did you mean"),
        ({"scope": ["housing"]}, "use one of council, police, school (or scope 'all')"),
        (
            {"restricted_fields": ["health.mental_health_contact_12m"]},
            "did you mean 'health.mental_health_contacts_12m'?",
        ),
    ],
)
async def test_bad_consent_is_refused_with_the_reason(
    tmp_path: Path, dev_issuer: IssuerServer, changes: dict[str, Any], words: str
):
    async with running_broker(tmp_path, dev_issuer) as broker:
        await _agencies(broker)
        response = await broker.client.post(
            "/v1/consents", json=consent(**changes), headers=broker.as_(Role.CASEWORKER)
        )
        entries = broker.entries("consent_change")
    assert response.status_code == 422
    assert words in response.text
    assert entries == []


async def test_a_caseworker_of_an_agency_not_registered_may_not_record_or_change_consent(
    tmp_path: Path, dev_issuer: IssuerServer
):
    async with running_broker(tmp_path, dev_issuer) as broker:
        await _agencies(broker)
        recorded = await broker.client.post(
            "/v1/consents", json=consent(), headers=broker.as_(Role.CASEWORKER)
        )
        nowhere = broker.as_(Role.CASEWORKER, agency="nowhere")
        refusal = await broker.client.post(
            "/v1/consents", json=consent(state="refused"), headers=nowhere
        )
        withdrawal = await broker.client.post(
            f"/v1/consents/{recorded.json()['id']}/transitions",
            json={"state": "withdrawn"},
            headers=nowhere,
        )
        entries = broker.entries("consent_change")
    detail = (
        "your agency 'nowhere' is not registered in Junction, so you may not record consent"
        " or ask about a family for it; ask an administrator to register it, or sign in"
        " with your agency's registered id"
    )
    for response in (refusal, withdrawal):
        assert response.status_code == 403
        assert response.json()["type"] == "urn:junction:problem:forbidden"
        assert response.json()["detail"] == detail
    assert len(entries) == 1


@pytest.mark.parametrize(
    ("reference", "detail"),
    [
        ("polce:PN0500003", "local_ref agency 'polce' is not registered; did you mean 'police'?"),
        (
            "housing:H-17",
            "local_ref agency 'housing' is not registered; use one of council, police, school",
        ),
    ],
)
async def test_a_consent_filed_under_an_unregistered_agencys_reference_is_refused(
    tmp_path: Path, dev_issuer: IssuerServer, reference: str, detail: str
):
    identifiers = [NHS, {"kind": "local_ref", "value": reference}]
    async with running_broker(tmp_path, dev_issuer) as broker:
        await _agencies(broker)
        response = await broker.client.post(
            "/v1/consents",
            json=consent(identifiers=identifiers, state="refused"),
            headers=broker.as_(Role.CASEWORKER),
        )
        entries = broker.entries("consent_change")
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "urn:junction:problem:invalid-change"
    assert problem["detail"] == detail
    assert problem["location"] == "identifiers.1.value"
    assert entries == []


@pytest.mark.parametrize(
    "expires_at",
    # Past year 9999 or before year 1 once in UTC, and past the times policy can compare.
    ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00", "2262-01-01T00:00:00Z"],
)
async def test_an_expiry_policy_cannot_compare_is_refused_naming_the_member(
    tmp_path: Path, dev_issuer: IssuerServer, expires_at: str
):
    async with running_broker(tmp_path, dev_issuer) as broker:
        await _agencies(broker)
        response = await broker.client.post(
            "/v1/consents",
            json=consent(expires_at=expires_at),
            headers=broker.as_(Role.CASEWORKER),
        )
        entries = broker.entries("consent_change")
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"] == "urn:junction:problem:invalid-request"
    assert problem["errors"] == [
        {
            "location": "expires_at",
            "message": "expires_at must fall between 1678-01-01 and 2261-12-31"
            " in UTC; a consent that does not expire has none",
        }
    ]
    assert entries == []


@pytest.mark.parametrize("path", ["/v1/consents", "/v1/consents/search"])
async def test_an_nhs_number_failing_its_check_digit_is_refused_naming_the_member(
    tmp_path: Path, dev_issuer: IssuerServer, path: str
):
    identifiers = [LOCAL, {"kind": "nhs_number", "value": "9434765918"}]
    body = (
        consent(identifiers=identifiers) if path == "/v1/consents" else {"identifiers": identifiers}
    )
    async with running_broker(tmp_path, dev_issuer) as broker:
        await _agencies(broker)
        response = await broker.client.post(path, json=body, headers=broker.as_(Role.CASEWORKER))
        entries = broker.entries("consent_change")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:junction:problem:invalid-request"
    assert problem["errors"] == [
        {
            "location": "identifiers.1.value",
            "message": "nhs_number fails its check digit: check it was copied correctly",
        }
    ]
    assert "9434765918" not in response.text
    assert entries == []


async def test_consent_recorded_with_hyphens_is_found_without_them(
    tmp_path: Path, dev_issuer: IssuerServer
):
    async with running_broker(tmp_path, dev_issuer) as broker:
        await _agencies(broker)
        caseworker = broker.as_(Role.CASEWORKER)
        hyphens = {"kind": "nhs_number", "value": "943-476-5919"}
        recorded = await broker.client.post(
            "/v1/consents", json=consent(identifiers=[hyphens]), headers=caseworker
        )
        found = await broker.client.post(
            "/v1/consents/search",
            json={"identifiers": [{"kind": "nhs_number", "value": "9434765919"}]},
            headers=caseworker,
        )
    assert recorded.status_code == 201, recorded.text
    assert [c["id"] for c in found.json()] == [recorded.json()["id"]]


async def test_an_unknown_consent_is_404(tmp_path: Path, dev_issuer: IssuerServer):
    async with running_broker(tmp_path, dev_issuer) as broker:
        await _agencies(broker)
        response = await broker.client.get(
            "/v1/consents/0b9b0e3c-0000-4000-8000-000000000000",
            headers=broker.as_(Role.CASEWORKER),
        )
    assert response.status_code == 404
    assert "search by the person's identifiers" in response.json()["detail"]


async def test_consent_expiring_tomorrow_reads_expired_the_day_after(
    tmp_path: Path, dev_issuer: IssuerServer
):
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    async with running_broker(tmp_path, dev_issuer) as broker:
        await _agencies(broker)
        recorded = await broker.client.post(
            "/v1/consents",
            json=consent(expires_at=tomorrow.isoformat()),
            headers=broker.as_(Role.CASEWORKER),
        )
        person = _keys(broker).reference("local_ref", "school:UPN-778")
        service = broker.app.state.consent
        today = service.consents_for([person], "early_help_assessment", datetime.now(UTC))
        later = service.consents_for(
            [person], "early_help_assessment", tomorrow + timedelta(days=1)
        )
    assert recorded.json()["state"] == "given"
    assert {r.state for r in today[person]} == {"given"}
    assert {r.state for r in later[person]} == {"expired"}
    assert later[person][0].expires_at == tomorrow


def test_the_documented_examples_are_valid_requests():
    for model in (ConsentIn, ConsentTransition, AgreementCreate):
        examples = model.model_json_schema()["examples"]
        assert examples
        for example in examples:
            model.model_validate(example)
