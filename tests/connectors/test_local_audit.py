"""The connector's own signed log: what goes in, what stays out, and that it verifies."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audit.checkpoint import NoteSigner
from audit.log import AuditLog
from broker.cli import app as junction
from connectors.errors import ConfigError
from connectors.local_audit import AuditLogRecorder, local_log_origin
from connectors.protocol.keys import KeyPair, generate_key_files
from connectors.service import AuditEvent, AuditKind
from tests.connectors.service_kit import build_rig, fetch_request

pytestmark = pytest.mark.anyio

AT = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[AuditLogRecorder]:
    key = generate_key_files(tmp_path / "keys", "police")
    opened = AuditLogRecorder.open(
        f"sqlite:///{tmp_path / 'audit.db'}", key, agency_id="police", checkpoint_interval=0.05
    )
    yield opened
    opened.close()


def _event(**overrides: object) -> AuditEvent:
    values: dict[str, object] = {
        "kind": AuditKind.FETCH,
        "at": AT,
        "counterparty": "broker",
        "decision": "released",
        "query_id": "q-1",
        "exchange_id": "x-1",
        "requester_agency": "social-care",
        "purpose": "child_protection_enquiry",
        "legal_basis": "ca1989_s47",
        "fields_released": ("police.callouts_12m",),
        "refs": ("pol-0001-ann",),
        "request_digest": "sha256:" + "11" * 32,
        "response_digest": "sha256:" + "22" * 32,
        "decision_digest": "sha256:" + "33" * 32,
        "policy_digest": "sha256:" + "44" * 32,
    }
    values.update(overrides)
    return AuditEvent(**values)  # type: ignore[arg-type]


def test_an_exchange_becomes_an_entry_without_personal_data(recorder: AuditLogRecorder) -> None:
    index = recorder.record(_event())
    stored = recorder.log.get(index).fields
    assert stored["kind"] == "fetch"
    assert stored["decision"] == "allow"
    assert stored["actor"] == "broker"
    assert stored["actor_agency"] == "social-care"
    assert stored["counterparty_agency"] == "police"
    assert stored["fields_released"] == ["police.callouts_12m"]
    assert stored["subjects"] == [recorder.subject("pol-0001-ann")]
    assert "pol-0001-ann" not in str(stored)
    assert "broker-decision:sha256:" + "33" * 32 in stored["reasons"]


@pytest.mark.parametrize(
    "case",
    [
        (AuditKind.FETCH, "released", ("field:not-held",), "fetch", "partial"),
        (AuditKind.FETCH, "released", ("person:live-investigation",), "fetch", "partial"),
        (AuditKind.MATCH, "matched", (), "match", "allow"),
        (AuditKind.REFUSAL, "refused", ("purpose:purpose-not-accepted",), "refusal", "deny"),
        (AuditKind.REJECTION, "rejected", ("envelope-replayed",), "refusal", "deny"),
    ],
)
def test_decisions_are_recorded_as_allow_partial_or_deny(
    recorder: AuditLogRecorder, case: tuple[AuditKind, str, tuple[str, ...], str, str]
) -> None:
    kind, decision, reasons, expected_kind, expected = case
    index = recorder.record(
        _event(kind=kind, decision=decision, reasons=reasons, decision_digest=None)
    )
    stored = recorder.log.get(index).fields
    assert (stored["kind"], stored["decision"]) == (expected_kind, expected)
    assert stored.get("reasons", []) == list(reasons)


def test_the_same_person_has_the_same_subject_reference_across_entries(
    recorder: AuditLogRecorder,
) -> None:
    first = recorder.record(_event(refs=("pol-0001-ann", "pol-0003-cat")))
    second = recorder.record(_event(refs=("pol-0003-cat",)))
    cat = recorder.subject("pol-0003-cat")
    assert cat in recorder.log.get(first).fields["subjects"]
    assert recorder.log.get(second).fields["subjects"] == [cat]


def test_the_local_log_verifies_with_the_agency_public_key(
    recorder: AuditLogRecorder, tmp_path: Path
) -> None:
    for n in range(5):
        recorder.record(_event(query_id=f"q-{n}"))
    recorder.log.receipt(4, timeout=5)
    result = CliRunner().invoke(
        junction,
        [
            "audit",
            "verify",
            "--db",
            f"sqlite:///{tmp_path / 'audit.db'}",
            "--public-key",
            str(tmp_path / "keys" / "police.pub"),
            "--origin",
            local_log_origin("police"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "OK" in result.output or "ok" in result.output


def test_a_log_signed_by_another_key_is_not_reopened(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    AuditLogRecorder.open(url, KeyPair.generate(), agency_id="police").close()
    with pytest.raises(ConfigError, match="local audit log"):
        AuditLogRecorder.open(url, KeyPair.generate(), agency_id="police")


async def test_nothing_is_released_when_the_local_log_cannot_record(tmp_path: Path) -> None:
    key = KeyPair.generate()
    origin = local_log_origin("police")
    log = AuditLog.open(
        f"sqlite:///{tmp_path / 'audit.db'}", NoteSigner(origin, key.private_key), origin=origin
    )
    log.close()
    rig = build_rig(audit=AuditLogRecorder(log, agency_id="police", subject_key=b"k" * 32))
    request = fetch_request({"pol-0001-ann": ["police.callouts_12m"]})
    async with rig.client() as client:
        response = await client.post(
            "/v1/fetch", content=rig.broker.seal(request, "police").to_bytes()
        )
    assert response.status_code == 503
    assert response.json()["type"] == "urn:junction:problem:local-audit-unavailable"
    assert b"police.callouts_12m" not in response.content
