"""The registry's admin API: agencies, connectors with checked manifests, agreements."""

from __future__ import annotations

import asyncio
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from broker.db import Database
from broker.identity import Role
from broker.registry import repository as repo
from broker.registry.models import AgreementRow
from broker.registry.service import RegistryService
from broker.subjects import consent_key_id_of
from connectors.protocol.envelope import body_digest
from connectors.protocol.keys import KeyPair
from connectors.protocol.messages import FieldOffer, FieldType, Sensitivity
from tests.broker.foundation_kit import Broker, FakeConnector, IssuerServer, running_broker

pytestmark = pytest.mark.anyio

COUNCIL = {"id": "council", "name": "Riverside Borough Council", "type": "local_authority"}
POLICE = {"id": "police", "name": "Riverside Police", "type": "police"}


def agreement(**changes: Any) -> dict[str, Any]:
    body = {
        "id": "dsa-council-police",
        "parties": ["council", "police"],
        "purposes": ["early_help_assessment"],
        "legal_bases": ["consent"],
        "fields": ["police.missing_episodes_12m"],
        "valid_from": "2026-01-01T00:00:00Z",
        "status": "active",
    }
    body.update(changes)
    return body


async def _agencies(broker: Broker) -> None:
    for body in (COUNCIL, POLICE):
        response = await broker.client.post(
            "/v1/agencies", json=body, headers=broker.as_(Role.ADMIN)
        )
        assert response.status_code == 201, response.text


async def test_agency_changes_are_stored_and_each_is_one_audit_entry(
    tmp_path: Path, dev_issuer: IssuerServer, database_url: str
):
    async with running_broker(tmp_path, dev_issuer, database_url=database_url) as broker:
        admin = broker.as_(Role.ADMIN, agency="council")
        await _agencies(broker)
        again = await broker.client.post("/v1/agencies", json=COUNCIL, headers=admin)
        renamed = {"name": "Riverside Council", "type": "local_authority"}
        changed = await broker.client.put("/v1/agencies/council", json=renamed, headers=admin)
        same = await broker.client.put("/v1/agencies/council", json=renamed, headers=admin)
        listed = await broker.client.get("/v1/agencies", headers=broker.as_(Role.IG_OFFICER))
        missing = await broker.client.get("/v1/agencies/nobody", headers=admin)
        entries = broker.entries("registry_change")
    assert again.status_code == 409
    assert again.json()["type"] == "urn:junction:problem:conflict"
    assert changed.json()["name"] == "Riverside Council"
    assert same.status_code == 200
    assert [a["name"] for a in listed.json()] == ["Riverside Council", "Riverside Police"]
    assert missing.status_code == 404
    # Two registrations and one rename; the refused duplicate and the no-op are not changes.
    assert [e.fields["reasons"] for e in entries] == [
        ["agency_registered"],
        ["agency_registered"],
        ["agency_changed"],
    ]
    first = entries[0].fields
    assert first["actor"] == "dev:council:sam.okafor"
    assert first["actor_agency"] == "council"
    assert first["decision"] == "allow"
    assert first["counterparty_agency"] == "council"
    assert first["request_digest"] == body_digest(COUNCIL)


async def test_an_agency_change_made_to_what_was_since_changed_is_refused(
    tmp_path: Path, dev_issuer: IssuerServer
):
    async with running_broker(tmp_path, dev_issuer) as broker:
        admin = broker.as_(Role.ADMIN)
        await _agencies(broker)
        url = "/v1/agencies/council"
        read = await broker.client.get(url, headers=admin)
        tag = read.headers["ETag"]
        # One administrator renames the council; another, still holding what they read,
        # changes its type and sends the old name with it.
        renamed = await broker.client.put(
            url,
            json={"name": "Riverside Council", "type": "local_authority"},
            headers={**admin, "If-Match": tag},
        )
        stale = await broker.client.put(
            url,
            json={"name": COUNCIL["name"], "type": "childrens_social_care"},
            headers={**admin, "If-Match": tag},
        )
        now = await broker.client.get(url, headers=admin)
        retyped = await broker.client.put(
            url,
            json={"name": "Riverside Council", "type": "childrens_social_care"},
            headers={**admin, "If-Match": now.headers["ETag"]},
        )
        entries = broker.entries("registry_change")
    assert renamed.status_code == 200, renamed.text
    assert renamed.headers["ETag"] == now.headers["ETag"] != tag
    assert stale.status_code == 412, stale.text
    assert stale.json()["type"] == "urn:junction:problem:precondition-failed"
    assert stale.json()["detail"] == (
        "agency 'council' has changed since the version If-Match names: read it again"
        " (GET /v1/agencies/council), make your change to what it is now and send it with"
        f" If-Match: {now.headers['ETag']}"
    )
    assert (now.json()["name"], now.json()["type"]) == ("Riverside Council", "local_authority")
    assert retyped.status_code == 200, retyped.text
    assert (retyped.json()["name"], retyped.json()["type"]) == (
        "Riverside Council",
        "childrens_social_care",
    )
    assert [e.fields["reasons"][0] for e in entries[2:]] == ["agency_changed", "agency_changed"]


async def test_the_same_change_sent_at_once_is_made_and_logged_once(
    tmp_path: Path, dev_issuer: IssuerServer, database_url: str
):
    async with running_broker(tmp_path, dev_issuer, database_url=database_url) as broker:
        admin = broker.as_(Role.ADMIN, agency="council")
        await _agencies(broker)
        newcomer = {"id": "school", "name": "Riverside School", "type": "education"}
        agencies = await asyncio.gather(
            *(broker.client.post("/v1/agencies", json=newcomer, headers=admin) for _ in range(6))
        )
        agreements = await asyncio.gather(
            *(
                broker.client.post("/v1/agreements", json=agreement(), headers=admin)
                for _ in range(6)
            )
        )
        versions = await broker.client.get(
            "/v1/agreements/dsa-council-police/versions", headers=admin
        )
        entries = broker.entries("registry_change")
    assert sorted(r.status_code for r in agencies) == [201, 409, 409, 409, 409, 409]
    assert sorted(r.status_code for r in agreements) == [201, 409, 409, 409, 409, 409]
    assert len(versions.json()) == 1
    # The log holds what was done, not what was tried: a refused duplicate is no change.
    assert [e.fields["reasons"][0] for e in entries[2:]] == [
        "agency_registered",
        "agreement_created",
    ]


async def test_a_connector_is_registered_from_its_verified_manifest(
    tmp_path: Path, dev_issuer: IssuerServer, database_url: str
):
    police = FakeConnector("police")
    async with running_broker(
        tmp_path, dev_issuer, database_url=database_url, connectors={"police": police}
    ) as broker:
        await _agencies(broker)
        # It holds the broker's consent key, so consent is found through its records.
        police.consent_key_id = consent_key_id_of(broker.settings.consent_key_file())
        registered = await broker.client.put(
            "/v1/agencies/police/connector",
            json={"base_url": "http://police.test", "public_key": police.public_key},
            headers=broker.as_(Role.ADMIN),
        )
        agency = await broker.client.get("/v1/agencies/police", headers=broker.as_(Role.ADMIN))
        records = broker.app.state.registry.connectors_for_matching()
        entries = broker.entries("registry_change")
    assert registered.status_code == 200, registered.text
    assert registered.json()["key_id"] == police.key.key_id
    assert registered.json()["consent_key_id"] == police.consent_key_id
    assert police.consent_key_id is not None
    assert police.consent_key_id.startswith("ck-")
    assert agency.json()["connector"]["fields"][0]["name"] == "police.domestic_abuse_incidents_12m"
    [record] = records
    assert (record.agency_id, record.agency_type, record.base_url) == (
        "police",
        "police",
        "http://police.test",
    )
    assert [(f.name, f.sensitivity) for f in record.fields] == [
        ("police.domestic_abuse_incidents_12m", "criminal_offence"),
        ("police.missing_episodes_12m", "ordinary"),
    ]
    assert entries[-1].fields["reasons"] == ["connector_registered"]
    assert entries[-1].fields["counterparty_agency"] == "police"


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("another_agency", (422, "manifest-rejected", "says it is 'housing'")),
        ("other_signing_key", (422, "manifest-rejected", ", not the registered ")),
        (
            "registered_under_another_agency",
            (
                422,
                "manifest-rejected",
                "the connector at http://police.test/v1/manifest signs as 'police' with the "
                "key given, so it is police's connector, not council's; register it under police",
            ),
        ),
        ("other_announced_key", (422, "manifest-rejected", "register the key")),
        (
            "other_agency_type",
            (422, "manifest-rejected", "says police is a 'health' agency, but it is registered"),
        ),
        (
            "other_consent_key",
            (
                422,
                "manifest-rejected",
                "holds consent key ck-0123456789abcdef, not the broker's ck-",
            ),
        ),
        ("wrong_audience", (422, "manifest-rejected", "does not verify")),
        ("down", (502, "connector-unreachable", "cannot reach")),
        ("flood", (422, "manifest-rejected", "over 8 MB, far more than a manifest")),
        ("not_a_key", (422, "invalid-change", "public_key")),
        ("key_id_mismatch", (422, "invalid-change", "key_id")),
        ("unknown_agency", (404, "not-found", "no agency 'nobody'")),
    ],
)
async def test_a_connector_whose_manifest_does_not_check_out_is_refused(
    tmp_path: Path, dev_issuer: IssuerServer, fault: str, expected: tuple[int, str, str]
):
    status, code, words = expected
    police = FakeConnector("police")
    body: dict[str, Any] = {"base_url": "http://police.test", "public_key": police.public_key}
    path = "/v1/agencies/police/connector"
    if fault == "another_agency":
        police.announced_agency = "housing"
    elif fault == "other_signing_key":
        body["public_key"] = FakeConnector("police").public_key
    elif fault == "registered_under_another_agency":
        path = "/v1/agencies/council/connector"
    elif fault == "other_announced_key":
        police.announced_key = KeyPair.generate()
    elif fault == "other_agency_type":
        police.announced_type = "health"
    elif fault == "other_consent_key":
        police.consent_key_id = "ck-0123456789abcdef"
    elif fault == "wrong_audience":
        police.audience = "another-broker"
    elif fault == "down":
        police.up = False
    elif fault == "flood":
        police.flood_bytes = 64 * 1024 * 1024
    elif fault == "not_a_key":
        body["public_key"] = "bm90IGEga2V5"
    elif fault == "key_id_mismatch":
        body["key_id"] = "0" * 32
    elif fault == "unknown_agency":
        path = "/v1/agencies/nobody/connector"
    async with running_broker(tmp_path, dev_issuer, connectors={"police": police}) as broker:
        await _agencies(broker)
        response = await broker.client.put(path, json=body, headers=broker.as_(Role.ADMIN))
        stored = await broker.client.get("/v1/agencies/police", headers=broker.as_(Role.ADMIN))
        entries = broker.entries("registry_change")
    assert response.status_code == status, response.text
    assert response.json()["type"] == f"urn:junction:problem:{code}"
    assert words in response.json()["detail"]
    assert stored.json()["connector"] is None
    assert [e.fields["reasons"] for e in entries] == [["agency_registered"]] * 2


_PORT = "the port must be a number from 1 to 65535"


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("http://police.test:abc", _PORT),
        ("http://police.test:99999", _PORT),
        ("http://police.test:0", _PORT),
        ("http://[::1", "an IPv6 address goes in brackets, e.g. http://[::1]:8080"),
        ("http://police.test?x=\u0001", "it holds a control character"),
        ("http://:8080", "it names no host"),
        ("http://police.test/?x=1", "a base URL takes no query (?) or fragment (#)"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/agencies/police/connector", "/v1/agencies/police"])
async def test_a_base_url_no_request_can_be_sent_to_is_refused_naming_it(
    tmp_path: Path, dev_issuer: IssuerServer, base_url: str, problem: str, path: str
):
    police = FakeConnector("police")
    connector = {"base_url": base_url, "public_key": police.public_key}
    retype = {"name": "Riverside Police", "type": "youth_justice", "connector": connector}
    body, location = (
        (connector, "base_url") if path.endswith("/connector") else (retype, "connector.base_url")
    )
    async with running_broker(tmp_path, dev_issuer, connectors={"police": police}) as broker:
        admin = await _police_connector(broker, police)
        response = await broker.client.put(path, json=body, headers=admin)
        stored = await broker.client.get("/v1/agencies/police", headers=admin)
        entries = broker.entries("registry_change")
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "urn:junction:problem:invalid-request"
    assert response.json()["errors"] == [
        {"location": location, "message": f"base_url is not a usable URL: {problem}"}
    ]
    assert (stored.json()["type"], stored.json()["connector"]["base_url"]) == (
        "police",
        "http://police.test",
    )
    assert len(entries) == 3


async def _police_connector(broker: Broker, police: FakeConnector) -> dict[str, str]:
    """Register the agencies and the police connector; the admin's headers."""
    admin = broker.as_(Role.ADMIN)
    await _agencies(broker)
    body = {"base_url": "http://police.test", "public_key": police.public_key}
    registered = await broker.client.put("/v1/agencies/police/connector", json=body, headers=admin)
    assert registered.status_code == 200, registered.text
    return admin


async def test_refreshing_a_manifest_picks_up_new_fields(tmp_path: Path, dev_issuer: IssuerServer):
    police = FakeConnector("police")
    async with running_broker(tmp_path, dev_issuer, connectors={"police": police}) as broker:
        admin = await _police_connector(broker, police)
        unchanged = await broker.client.post("/v1/agencies/police/connector/refresh", headers=admin)
        police.fields.append(
            FieldOffer(
                name="police.callouts_12m", type=FieldType.INTEGER, sensitivity=Sensitivity.ORDINARY
            )
        )
        refreshed = await broker.client.post("/v1/agencies/police/connector/refresh", headers=admin)
        none = await broker.client.post("/v1/agencies/council/connector/refresh", headers=admin)
        entries = broker.entries("registry_change")
    assert len(unchanged.json()["fields"]) == 2
    assert [f["name"] for f in refreshed.json()["fields"]][-1] == "police.callouts_12m"
    assert none.status_code == 404
    assert [e.fields["reasons"][0] for e in entries][-2:] == [
        "connector_registered",
        "connector_changed",
    ]


async def test_an_agency_with_a_connector_is_retyped_only_when_the_connector_agrees(
    tmp_path: Path, dev_issuer: IssuerServer
):
    police = FakeConnector("police")
    async with running_broker(tmp_path, dev_issuer, connectors={"police": police}) as broker:
        admin = await _police_connector(broker, police)
        health = {"name": "Riverside Police", "type": "health"}
        # The connector still says it is a police agency: policy would judge its
        # exchanges by the rules for health, so the registry does not change.
        refused = await broker.client.put("/v1/agencies/police", json=health, headers=admin)
        police.up = False
        unreachable = await broker.client.put("/v1/agencies/police", json=health, headers=admin)
        renamed = await broker.client.put(
            "/v1/agencies/police",
            json={"name": "Riverside Constabulary", "type": "police"},
            headers=admin,
        )
        police.up, police.announced_type = True, "health"
        police.fields.append(
            FieldOffer(
                name="police.callouts_12m", type=FieldType.INTEGER, sensitivity=Sensitivity.ORDINARY
            )
        )
        retyped = await broker.client.put(
            "/v1/agencies/police",
            json={"name": "Riverside Constabulary", "type": "health"},
            headers=admin,
        )
        [record] = broker.app.state.registry.connectors_for_matching()
        entries = broker.entries("registry_change")
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"] == (
        "agency 'police' cannot become a 'health' agency while its connector at"
        " http://police.test says it is a 'police' agency: set the connector's agency type"
        " to 'health' first, then change the agency's type again"
    )
    assert unreachable.status_code == 502, unreachable.text
    assert unreachable.json()["type"] == "urn:junction:problem:connector-unreachable"
    # A new name needs no word from the connector.
    assert renamed.status_code == 200, renamed.text
    assert retyped.status_code == 200, retyped.text
    assert (retyped.json()["name"], retyped.json()["type"]) == ("Riverside Constabulary", "health")
    # The manifest that agreed is the one stored, with the change.
    assert retyped.json()["connector"]["fields"][-1]["name"] == "police.callouts_12m"
    assert (record.agency_type, record.fields[-1].name) == ("health", "police.callouts_12m")
    assert [e.fields["reasons"][0] for e in entries][2:] == [
        "connector_registered",
        "agency_changed",
        "agency_changed",
        "connector_changed",
    ]


async def test_an_agency_moving_to_a_new_connector_is_retyped_with_it(
    tmp_path: Path, dev_issuer: IssuerServer
):
    police, moved = FakeConnector("police"), FakeConnector("police")
    moved.announced_type = "youth_justice"
    connectors = {"police": police, "police2": moved}
    async with running_broker(tmp_path, dev_issuer, connectors=connectors) as broker:
        admin = await _police_connector(broker, police)
        police.up = False  # the old system is switched off as the new one starts
        body = {
            "name": "Riverside Youth Justice",
            "type": "youth_justice",
            "connector": {"base_url": "http://police2.test", "public_key": moved.public_key},
        }
        retyped = await broker.client.put("/v1/agencies/police", json=body, headers=admin)
        [record] = broker.app.state.registry.connectors_for_matching()
        entries = broker.entries("registry_change")
    assert retyped.status_code == 200, retyped.text
    assert retyped.json()["type"] == "youth_justice"
    assert retyped.json()["connector"]["base_url"] == "http://police2.test"
    assert (record.agency_type, record.key_id) == ("youth_justice", moved.key.key_id)
    assert [e.fields["reasons"][0] for e in entries][2:] == [
        "connector_registered",
        "agency_changed",
        "connector_changed",
    ]


async def test_a_connector_sent_with_an_agency_change_but_no_new_type_is_refused(
    tmp_path: Path, dev_issuer: IssuerServer
):
    police, moved = FakeConnector("police"), FakeConnector("police")
    connectors = {"police": police, "police2": moved}
    async with running_broker(tmp_path, dev_issuer, connectors=connectors) as broker:
        admin = await _police_connector(broker, police)
        body = {
            "name": "Riverside Constabulary",
            "type": "police",
            "connector": {"base_url": "http://police2.test", "public_key": moved.public_key},
        }
        response = await broker.client.put("/v1/agencies/police", json=body, headers=admin)
        stored = await broker.client.get("/v1/agencies/police", headers=admin)
        entries = broker.entries("registry_change")
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "urn:junction:problem:invalid-change"
    assert response.json()["detail"] == (
        "connector is taken only with a new type, to confirm it; to register or replace"
        " police's connector, use PUT /v1/agencies/police/connector"
    )
    # Neither the name nor the connector changed: nothing reads as done that was not.
    assert (stored.json()["name"], stored.json()["connector"]["base_url"]) == (
        "Riverside Police",
        "http://police.test",
    )
    assert len(entries) == 3


async def test_a_retype_whose_manifest_cannot_be_stored_leaves_the_type_as_it_was(
    tmp_path: Path, dev_issuer: IssuerServer, monkeypatch: pytest.MonkeyPatch
):
    police = FakeConnector("police")
    async with running_broker(tmp_path, dev_issuer, connectors={"police": police}) as broker:
        admin = await _police_connector(broker, police)
        police.announced_type = "health"

        def failing(*_: object) -> None:
            raise sa.exc.OperationalError("UPDATE connectors", {}, Exception("disk I/O error"))

        monkeypatch.setattr(RegistryService, "_put_connector", failing)
        retype = {"name": "Riverside Police", "type": "health"}
        failed = await broker.client.put("/v1/agencies/police", json=retype, headers=admin)
        stored = await broker.client.get("/v1/agencies/police", headers=admin)
        [record] = broker.app.state.registry.connectors_for_matching()
    assert failed.status_code == 503, failed.text
    # Neither the type nor the manifest changed: they still agree.
    assert stored.json()["type"] == "police"
    assert record.agency_type == "police"


async def test_an_agreement_change_is_a_new_version_and_old_ones_stay(
    tmp_path: Path, dev_issuer: IssuerServer, database_url: str
):
    async with running_broker(tmp_path, dev_issuer, database_url=database_url) as broker:
        admin = broker.as_(Role.ADMIN)
        await _agencies(broker)
        created = await broker.client.post("/v1/agreements", json=agreement(), headers=admin)
        v1_time = datetime.now(UTC)
        terms = agreement(fields=["police.missing_episodes_12m", "police.callouts_12m"])
        del terms["id"]
        changed = await broker.client.put(
            "/v1/agreements/dsa-council-police", json=terms, headers=admin
        )
        unchanged = await broker.client.put(
            "/v1/agreements/dsa-council-police", json=terms, headers=admin
        )
        versions = await broker.client.get(
            "/v1/agreements/dsa-council-police/versions", headers=broker.as_(Role.IG_OFFICER)
        )
        registry = broker.app.state.registry
        at_v1 = registry.agreements_between("council", "police", v1_time)
        now = registry.agreements_between("police", "council", datetime.now(UTC))
        unrelated = registry.agreements_between("council", "housing", datetime.now(UTC))
        before = registry.agreements_between("council", "police", v1_time - timedelta(days=1))
        entries = broker.entries("registry_change")
    assert created.status_code == 201
    assert (created.json()["version"], changed.json()["version"]) == (1, 2)
    assert unchanged.json()["version"] == 2
    assert [v["fields"] for v in versions.json()] == [
        ["police.missing_episodes_12m"],
        ["police.callouts_12m", "police.missing_episodes_12m"],
    ]
    assert [(a.id, a.version) for a in at_v1] == [("dsa-council-police", 1)]
    assert [(a.version, a.status, a.purposes) for a in now] == [
        (2, "active", ["early_help_assessment"])
    ]
    assert unrelated == []
    assert before == []
    assert [e.fields["reasons"][0] for e in entries][-2:] == [
        "agreement_created",
        "agreement_changed",
    ]


async def test_each_agreement_entry_names_the_agreement_and_version(
    tmp_path: Path, dev_issuer: IssuerServer
):
    async with running_broker(tmp_path, dev_issuer) as broker:
        admin = broker.as_(Role.ADMIN)
        await _agencies(broker)
        for agreement_id in ("dsa-council-police", "dsa-police-council"):
            created = await broker.client.post(
                "/v1/agreements", json=agreement(id=agreement_id), headers=admin
            )
            assert created.status_code == 201, created.text
        terms = agreement(status="suspended")
        del terms["id"]
        changed = await broker.client.put(
            "/v1/agreements/dsa-police-council", json=terms, headers=admin
        )
        assert changed.status_code == 200, changed.text
        entries = broker.entries("registry_change")
    # An IG officer reading the log can tell which agreement each change was made to.
    assert [e.fields["reasons"] for e in entries[2:]] == [
        ["agreement_created", "agreement:dsa-council-police", "version:1"],
        ["agreement_created", "agreement:dsa-police-council", "version:1"],
        ["agreement_changed", "agreement:dsa-police-council", "version:2"],
    ]


async def test_a_change_made_to_a_version_already_replaced_is_refused(
    tmp_path: Path, dev_issuer: IssuerServer
):
    async with running_broker(tmp_path, dev_issuer) as broker:
        admin = broker.as_(Role.ADMIN)
        await _agencies(broker)
        url = "/v1/agreements/dsa-council-police"
        created = await broker.client.post("/v1/agreements", json=agreement(), headers=admin)
        # Two administrators read version 1; the first adds a field.
        read = await broker.client.get(url, headers=admin)
        first = agreement(fields=["police.missing_episodes_12m", "police.callouts_12m"])
        del first["id"]
        made = await broker.client.put(
            url, json=first, headers={**admin, "If-Match": read.headers["ETag"]}
        )
        # The second, still holding version 1, suspends it: sent as it was, that would
        # drop the first one's field without either of them knowing.
        second = agreement(status="suspended")
        del second["id"]
        stale = await broker.client.put(
            url, json=second, headers={**admin, "If-Match": read.headers["ETag"]}
        )
        versions = await broker.client.get(f"{url}/versions", headers=admin)
        current = await broker.client.get(url, headers=admin)
        redone = await broker.client.put(
            url,
            json={**second, "fields": first["fields"]},
            headers={**admin, "If-Match": current.headers["ETag"]},
        )
        anyway = await broker.client.put(url, json=first, headers={**admin, "If-Match": "*"})
        entries = broker.entries("registry_change")
    assert created.headers["ETag"] == read.headers["ETag"] == '"1"'
    assert made.status_code == 200, made.text
    assert made.headers["ETag"] == '"2"'
    assert stale.status_code == 412, stale.text
    problem = stale.json()
    assert problem["type"] == "urn:junction:problem:precondition-failed"
    assert problem["detail"] == (
        "agreement 'dsa-council-police' is at version 2 now, not the version If-Match names:"
        " read it again (GET /v1/agreements/dsa-council-police), make your change to version 2"
        ' and send it with If-Match: "2"'
    )
    assert problem["current_version"] == 2
    assert [v["version"] for v in versions.json()] == [1, 2]
    assert redone.status_code == 200, redone.text
    assert (redone.json()["version"], redone.json()["status"]) == (3, "suspended")
    assert redone.json()["fields"] == ["police.callouts_12m", "police.missing_episodes_12m"]
    assert anyway.status_code == 200, anyway.text
    assert anyway.json()["version"] == 4
    assert [e.fields["reasons"][0] for e in entries[2:]] == [
        "agreement_created",
        "agreement_changed",
        "agreement_changed",
        "agreement_changed",
    ]


@pytest.mark.parametrize("if_match", ['"3"', 'W/"1"', "1", '"one"'])
async def test_an_if_match_naming_no_stored_version_changes_nothing(
    tmp_path: Path, dev_issuer: IssuerServer, if_match: str
):
    async with running_broker(tmp_path, dev_issuer) as broker:
        admin = broker.as_(Role.ADMIN)
        await _agencies(broker)
        await broker.client.post("/v1/agreements", json=agreement(), headers=admin)
        terms = agreement(status="suspended")
        del terms["id"]
        response = await broker.client.put(
            "/v1/agreements/dsa-council-police",
            json=terms,
            headers={**admin, "If-Match": if_match},
        )
        versions = await broker.client.get(
            "/v1/agreements/dsa-council-police/versions", headers=admin
        )
    assert response.status_code == 412, response.text
    assert response.json()["type"] == "urn:junction:problem:precondition-failed"
    assert [v["version"] for v in versions.json()] == [1]


async def test_the_same_terms_in_another_order_are_no_change(
    tmp_path: Path, dev_issuer: IssuerServer, database_url: str
):
    terms = agreement(
        parties=["police", "council"],
        purposes=["early_help_assessment", "child_in_need_assessment"],
        legal_bases=["consent", "ca2004_s10"],
        fields=["police.missing_episodes_12m", "police.callouts_12m"],
    )
    del terms["id"]
    reordered = {
        **terms,
        "parties": ["council", "police"],
        "purposes": ["child_in_need_assessment", "early_help_assessment"],
        "legal_bases": ["ca2004_s10", "consent", "consent"],
        "fields": ["police.callouts_12m", "police.missing_episodes_12m", "police.callouts_12m"],
    }
    async with running_broker(tmp_path, dev_issuer, database_url=database_url) as broker:
        admin = broker.as_(Role.ADMIN)
        await _agencies(broker)
        await broker.client.post("/v1/agreements", json=agreement(), headers=admin)
        url = "/v1/agreements/dsa-council-police"
        changed = await broker.client.put(url, json=terms, headers=admin)
        again = await broker.client.put(url, json=reordered, headers=admin)
        versions = await broker.client.get(f"{url}/versions", headers=admin)
        entries = broker.entries("registry_change")
    assert (changed.status_code, again.status_code) == (200, 200)
    assert again.json() == changed.json()
    assert [v["version"] for v in versions.json()] == [1, 2]
    assert [e.fields["reasons"][0] for e in entries][2:] == [
        "agreement_created",
        "agreement_changed",
    ]
    # Stored, and logged, in one order and once each, whatever order they were sent in.
    normalised = {
        "parties": ["council", "police"],
        "purposes": ["child_in_need_assessment", "early_help_assessment"],
        "legal_bases": ["ca2004_s10", "consent"],
        "fields": ["police.callouts_12m", "police.missing_episodes_12m"],
    }
    assert {name: changed.json()[name] for name in normalised} == normalised
    logged = {"id": "dsa-council-police", "version": 2, **terms, **normalised, "valid_to": None}
    assert entries[-1].fields["request_digest"] == body_digest(logged)


async def test_a_version_stored_in_another_order_is_the_same_terms(
    tmp_path: Path, dev_issuer: IssuerServer, database_url: str
):
    async with running_broker(tmp_path, dev_issuer, database_url=database_url) as broker:
        admin = broker.as_(Role.ADMIN)
        await _agencies(broker)
        # As a broker that kept lists in the order they were sent stored it.
        unsorted = AgreementRow(
            id="dsa-council-police",
            version=1,
            parties=["police", "council"],
            purposes=["early_help_assessment"],
            legal_bases=["consent"],
            fields=["police.missing_episodes_12m", "police.callouts_12m"],
            valid_from=datetime(2026, 1, 1, tzinfo=UTC),
            valid_to=None,
            status="active",
            created_at=datetime.now(UTC),
            created_by="admin",
        )
        url = broker.settings.resolved_database_url()
        with closing(Database.open(url)) as db, db.session(write=True) as session:
            repo.add(session, unsorted)
        terms = agreement(fields=["police.callouts_12m", "police.missing_episodes_12m"])
        del terms["id"]
        same = await broker.client.put(
            "/v1/agreements/dsa-council-police", json=terms, headers=admin
        )
        entries = broker.entries("registry_change")
    assert same.status_code == 200
    assert same.json()["version"] == 1
    assert [e.fields["reasons"][0] for e in entries] == ["agency_registered"] * 2


_NOT_A_NUMBER = "{} must be a time such as 2026-01-01T00:00:00Z, not a number"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (agreement(parties=["council", "housing"]), 422, "not registered as agencies: housing"),
        (agreement(valid_to="2025-01-01T00:00:00Z"), 422, "valid_to must come after valid_from"),
        (agreement(parties=["council"]), 422, "errors"),
        (agreement(status="signed"), 422, "errors"),
        (agreement(valid_from="2026-01-01T00:00:00"), 422, "errors"),
        # Beyond year 9999 once in UTC, and beyond the times policy can compare.
        (agreement(valid_from="0001-01-01T00:00:00+14:00"), 422, "valid_from must fall"),
        (agreement(valid_to="9999-12-31T23:59:59-12:00"), 422, "valid_to must fall"),
        (agreement(valid_to="9999-12-31T23:59:59+14:00"), 422, "valid_to must fall"),
        (agreement(valid_from="0001-01-01T00:00:00-12:00"), 422, "valid_from must fall"),
        # A date written as a number would otherwise be read as seconds since 1970.
        (agreement(valid_from=20260101), 422, _NOT_A_NUMBER.format("valid_from")),
        (agreement(valid_to="20270101"), 422, _NOT_A_NUMBER.format("valid_to")),
        (agreement(valid_to=1.8e9), 422, _NOT_A_NUMBER.format("valid_to")),
        # Typos that would make an agreement that never covers any query.
        (
            agreement(purposes=["early_help_asessment"]),
            422,
            "purpose 'early_help_asessment' is not in the policy catalogue; did you mean",
        ),
        (agreement(legal_bases=["consnet"]), 422, "legal basis 'consnet' is not 'consent' or"),
        (agreement(status="draft", purposes=["holiday_club"]), 422, "'holiday_club' is not in"),
    ],
)
async def test_an_invalid_agreement_is_refused_with_the_reason(
    tmp_path: Path, dev_issuer: IssuerServer, body: dict[str, Any], status: int, words: str
):
    async with running_broker(tmp_path, dev_issuer) as broker:
        await _agencies(broker)
        response = await broker.client.post(
            "/v1/agreements", json=body, headers=broker.as_(Role.ADMIN)
        )
        entries = broker.entries("registry_change")
    assert response.status_code == status
    assert words in response.text
    assert len(entries) == 2


async def test_an_id_too_long_to_name_anything_is_refused_without_echoing_it(
    tmp_path: Path, dev_issuer: IssuerServer
):
    long_id = "a" * 5000
    async with running_broker(tmp_path, dev_issuer) as broker:
        admin = broker.as_(Role.ADMIN)
        answers = [
            await broker.client.get(f"/v1/agencies/{long_id}", headers=admin),
            await broker.client.get(f"/v1/agreements/{long_id}/versions", headers=admin),
            await broker.client.get(f"/v1/consents/{long_id}", headers=admin),
        ]
    assert [a.status_code for a in answers] == [422, 422, 422]
    # Only "instance", the address asked for, carries it: no message repeats it.
    assert all(long_id not in str({**a.json(), "instance": ""}) for a in answers)


async def test_the_openapi_document_states_the_roles_of_every_endpoint(
    tmp_path: Path, dev_issuer: IssuerServer
):
    async with running_broker(tmp_path, dev_issuer) as broker:
        document = (await broker.client.get("/openapi.json")).json()
    for path, operations in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            assert operation["description"].startswith("Roles: "), (method, path)


async def test_an_active_agreement_naming_a_field_no_party_offers_is_refused(
    tmp_path: Path, dev_issuer: IssuerServer
):
    police = FakeConnector("police")
    fields = ["police.missing_episode_12m", "police.domestic_abuse_incidents_12m"]
    async with running_broker(tmp_path, dev_issuer, connectors={"police": police}) as broker:
        admin = broker.as_(Role.ADMIN)
        await _agencies(broker)
        body = {"base_url": "http://police.test", "public_key": police.public_key}
        await broker.client.put("/v1/agencies/police/connector", json=body, headers=admin)
        refused = await broker.client.post(
            "/v1/agreements", json=agreement(fields=fields), headers=admin
        )
        draft = await broker.client.post(
            "/v1/agreements", json=agreement(fields=fields, status="draft"), headers=admin
        )
        terms = agreement(fields=fields)
        del terms["id"]
        activated = await broker.client.put(
            "/v1/agreements/dsa-council-police", json=terms, headers=admin
        )
        entries = broker.entries("registry_change")
    assert refused.status_code == 422
    assert refused.json()["type"] == "urn:junction:problem:invalid-change"
    assert refused.json()["detail"] == (
        "fields no party offers: police.missing_episode_12m (did you mean "
        "police.missing_episodes_12m?) (parties council, police; no connector registered "
        "for council); name fields their connectors' manifests list, or make it a draft"
    )
    assert draft.status_code == 201
    assert activated.status_code == 422
    assert [e.fields["reasons"][0] for e in entries][-2:] == [
        "connector_registered",
        "agreement_created",
    ]
