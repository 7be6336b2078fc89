"""Reloading policy without a restart: tested first, swapped atomically, audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audit import DEFAULT_ORIGIN, AuditLog, Entry, Kind, NoteSigner
from policies._opa import OpaServerEngine
from policies._regorus import RegorusEngine
from policies.bundle import Bundle
from policies.errors import BundleTestsFailed, EngineError
from policies.opa_standin import OpaStandin
from policies.service import PolicyService
from tests.policies.factories import copy_bundle, family_query


class Recorder:
    """The change callback as the broker wires it, keeping what it was told."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, str | None, str, dict[str, Any]]] = []

    def __call__(
        self, new_digest: str, previous_digest: str | None, actor: str, detail: dict[str, Any]
    ) -> None:
        self.changes.append((new_digest, previous_digest, actor, detail))


def _edit_reason(root: Path, old: str, new: str) -> None:
    path = root / "data" / "catalogue" / "reason_codes.json"
    path.write_text(path.read_text().replace(old, new))


def test_start_up_is_recorded_as_the_first_change(tmp_path: Path) -> None:
    recorder = Recorder()
    service = PolicyService([copy_bundle(tmp_path)], RegorusEngine, recorder, actor="broker")
    assert recorder.changes == [
        (service.digest, None, "broker", recorder.changes[0][3]),
    ]
    assert recorder.changes[0][3]["reason"] == "start-up"
    assert recorder.changes[0][3]["tests_passed"] > 0


def test_reload_puts_new_rules_in_force_and_records_both_digests(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    recorder = Recorder()
    service = PolicyService([root], RegorusEngine, recorder)
    before = service.digest
    _edit_reason(root, "This purpose needs a case reference.", "Add the case reference.")
    after = service.reload(actor="ig-officer-7")
    assert after != before
    assert service.digest == after
    assert recorder.changes[-1][:3] == (after, before, "ig-officer-7")
    refused = service.decide(family_query(case_reference=""))
    assert [r.text for r in refused.submit.reasons] == ["Add the case reference."]
    assert refused.bundle_digest == after


def test_reload_if_changed_only_reloads_when_files_changed(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    recorder = Recorder()
    service = PolicyService([root], RegorusEngine, recorder)
    assert service.reload_if_changed(actor="watcher") is None
    assert len(recorder.changes) == 1
    _edit_reason(root, "This purpose needs a case reference.", "Changed.")
    new = service.reload_if_changed(actor="watcher")
    assert new == service.digest
    assert recorder.changes[-1][2:] == ("watcher", recorder.changes[-1][3])
    assert recorder.changes[-1][3]["reason"] == "files changed"


def test_bundle_failing_its_tests_is_refused_and_the_old_one_stays(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    recorder = Recorder()
    service = PolicyService([root], RegorusEngine, recorder)
    before = service.digest
    # A rule change its own tests catch: offence data withheld under the wrong reason.
    exchange = root / "rego" / "exchange.rego"
    exchange.write_text(
        exchange.read_text().replace(
            'sensitivity_code("criminal_offence") := "offence_data_no_condition"',
            'sensitivity_code("criminal_offence") := "special_category_no_condition"',
        )
    )
    with pytest.raises(BundleTestsFailed, match="test_offence_data_needs_an_art_10_condition"):
        service.reload(actor="ig-officer-7")
    assert service.digest == before
    assert len(recorder.changes) == 1
    assert service.decide(family_query()).allow


def test_bundle_that_does_not_compile_is_refused(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    service = PolicyService([root], RegorusEngine, Recorder())
    before = service.digest
    (root / "rego" / "broken.rego").write_text("package junction.family\n\nnot rego at all :=\n")
    with pytest.raises(BundleTestsFailed, match="compile") as refused:
        service.reload(actor="ig-officer-7")
    assert service.digest == before
    # The author is told where: the file and line the parser stopped at.
    assert "broken.rego:3" in str(refused.value)


def test_a_change_the_audit_log_refuses_is_not_made(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    calls: list[str] = []

    def failing_recorder(
        new: str, previous: str | None, actor: str, detail: dict[str, Any]
    ) -> None:
        calls.append(new)
        if previous is not None:
            raise OSError("audit log unavailable")

    service = PolicyService([root], RegorusEngine, failing_recorder)
    before = service.digest
    _edit_reason(root, "This purpose needs a case reference.", "Changed.")
    with pytest.raises(OSError, match="audit log unavailable"):
        service.reload(actor="ig-officer-7")
    assert service.digest == before


def test_reload_lands_in_the_real_audit_log(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path / "bundle")
    signer = NoteSigner.generate(DEFAULT_ORIGIN)
    log = AuditLog.open(f"sqlite:///{tmp_path / 'audit.db'}", signer, sqlite_synchronous="NORMAL")

    def to_audit(new: str, previous: str | None, actor: str, detail: dict[str, Any]) -> None:
        reasons = (str(detail["reason"]),) + ((f"previous:{previous}",) if previous else ())
        log.append(Entry(kind=Kind.POLICY_CHANGE, actor=actor, policy_digest=new, reasons=reasons))

    try:
        service = PolicyService([root], RegorusEngine, to_audit, actor="broker")
        first = service.digest
        _edit_reason(root, "This purpose needs a case reference.", "Changed.")
        second = service.reload(actor="ig-officer-7")
        entries = [log.get(0), log.get(1)]
    finally:
        log.close()
    assert [e.kind for e in entries] == ["policy_change", "policy_change"]
    assert [e.fields["policy_digest"] for e in entries] == [first, second]
    assert entries[1].fields["actor"] == "ig-officer-7"
    assert entries[1].fields["reasons"] == ["reload", f"previous:{first}"]


def test_opa_engine_reload_replaces_the_modules_on_the_server(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    extra = root / "rego" / "extra.rego"
    extra.write_text("package junction.extra\n\nimport rego.v1\n\nanswer := 42\n")
    with OpaStandin() as server:

        def factory(bundle: Bundle) -> OpaServerEngine:
            return OpaServerEngine(bundle, server.url)

        service = PolicyService([root], factory, Recorder())
        assert service.evaluate("junction.extra.answer", {}) == 42
        extra.unlink()
        service.reload(actor="ig-officer-7")
        assert service.evaluate("junction.extra.answer", {}) is None
        assert service.decide(family_query()).engine == "opa"
        with pytest.raises(EngineError):
            service.evaluate("junction.family.now_ns", {"request": {"time": "not a time"}})
