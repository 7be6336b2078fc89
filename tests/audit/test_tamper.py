"""Tamper tests: build a real log, change its rows with SQL, and read the verifier's verdict.

Each test asserts the exact index (or checkpoint size) and kind of tamper reported.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from audit import TamperKind, verify_bundle, verify_store
from audit.checkpoint import Checkpoint, NoteSigner, cosign, sign_checkpoint
from audit.export import export_bundle
from audit.log import AuditLog
from audit.verify import Report
from tests.audit.conftest import make_entry
from tests.audit.tampering import rewrite_entry

OpenLog = Callable[..., AuditLog]
TARGET = 57


def _filled(log: AuditLog) -> AuditLog:
    """``log`` with 120 entries, checkpoints at sizes 25, 50, 75, 100 and 120."""
    for i in range(120):
        log.append(make_entry(i))
    log.close()
    assert [size for size, _ in log.store.checkpoints()] == [25, 50, 75, 100, 120]
    return log


@pytest.fixture
def log(open_log: OpenLog) -> AuditLog:
    """The test's log, on each backend."""
    return _filled(open_log(checkpoint_interval=60, checkpoint_entries=25))


@pytest.fixture
def sqlite_log(tmp_path: Path, signer: NoteSigner) -> Iterator[AuditLog]:
    """The same log on SQLite, the one store that keeps a value of another type than
    its column's (PostgreSQL refuses it), for the cases that store one."""
    log = AuditLog.open(
        f"sqlite:///{tmp_path / 'typed.db'}",
        signer,
        checkpoint_interval=60,
        checkpoint_entries=25,
    )
    yield _filled(log)
    log.close()


def _sql(log: AuditLog, *statements: str, **params: object) -> None:
    with log.store.engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement), params)


def _leaf(log: AuditLog, index: int) -> bytes:
    with log.store.engine.connect() as conn:
        leaf = conn.scalar(sa.text("SELECT leaf FROM audit_entries WHERE idx = :i"), {"i": index})
    return bytes(leaf)


def _verify(log: AuditLog) -> Report:
    return verify_store(log.store, log.verifier)


def _assert_first(
    report: Report, kind: TamperKind, index: int | None, size: int | None = None
) -> None:
    first = report.first
    assert first is not None, "the verifier found nothing"
    assert (first.kind, first.index, first.tree_size) == (kind, index, size), first


def _shift(log: AuditLog, start: int, by: int) -> None:
    # Two steps, so that no primary key collides half way through the update.
    for table in ("audit_entries", "audit_openings"):
        _sql(
            log,
            f"UPDATE {table} SET idx = -idx - 1 WHERE idx >= :start",  # noqa: S608
            f"UPDATE {table} SET idx = -idx - 1 + :by WHERE idx < 0",  # noqa: S608
            start=start,
            by=by,
        )


def test_untouched_log_verifies(log: AuditLog) -> None:
    report = _verify(log)
    assert report.ok, report.findings
    assert (report.entries, report.checkpoints, report.signed_size) == (120, 5, 120)


def test_payload_changed(log: AuditLog) -> None:
    leaf = _leaf(log, TARGET).replace(b'"decision":"allow"', b'"decision":"deny"')
    _sql(log, "UPDATE audit_entries SET leaf = :leaf WHERE idx = :i", leaf=leaf, i=TARGET)
    _assert_first(_verify(log), TamperKind.ENTRY_ALTERED, TARGET)


def test_payload_and_its_hash_rewritten_together(log: AuditLog) -> None:
    rewrite_entry(log.store.engine, TARGET, b'"decision":"allow"', b'"decision":"deny"')
    report = _verify(log)
    # Entries 56 and 57 share a parent node: the verifier names the pair.
    _assert_first(report, TamperKind.ENTRY_ALTERED, TARGET - 1)
    assert f"entry {TARGET - 1} or {TARGET}" in report.findings[0].detail


def test_leaf_hash_changed(log: AuditLog) -> None:
    _sql(log, "UPDATE audit_entries SET leaf_hash = :h WHERE idx = :i", h=b"\x01" * 32, i=TARGET)
    _assert_first(_verify(log), TamperKind.LEAF_HASH_ALTERED, TARGET)


def test_private_value_changed(log: AuditLog) -> None:
    _sql(log, "UPDATE audit_openings SET value = 'nothing to see' WHERE idx = :i", i=TARGET)
    _assert_first(_verify(log), TamperKind.PRIVATE_VALUE_ALTERED, TARGET)


def test_private_value_deleted_without_erasure(log: AuditLog) -> None:
    _sql(log, "DELETE FROM audit_openings WHERE idx = :i AND name = 'case_ref'", i=TARGET)
    _assert_first(_verify(log), TamperKind.PRIVATE_VALUE_MISSING, TARGET)


def test_erasure_record_without_erasure_entry(log: AuditLog) -> None:
    _sql(
        log,
        "DELETE FROM audit_openings WHERE idx = :i",
        "INSERT INTO audit_erasures VALUES (:i, 0, 'someone', 'none', :j)",
        i=TARGET,
        j=TARGET + 1,
    )
    _assert_first(_verify(log), TamperKind.ERASURE_UNLOGGED, TARGET)


def test_leaf_stored_as_text(sqlite_log: AuditLog) -> None:
    _sql(sqlite_log, "UPDATE audit_entries SET leaf = CAST(leaf AS TEXT) WHERE idx = :i", i=TARGET)
    _assert_first(_verify(sqlite_log), TamperKind.ENTRY_ALTERED, TARGET)


def test_leaf_stored_as_text_that_is_not_utf8(sqlite_log: AuditLog) -> None:
    _sql(sqlite_log, "UPDATE audit_entries SET leaf = x'ff' || leaf WHERE idx = :i", i=TARGET)
    _assert_first(_verify(sqlite_log), TamperKind.ENTRY_ALTERED, TARGET)


def test_leaf_hash_stored_as_text(sqlite_log: AuditLog) -> None:
    _sql(sqlite_log, "UPDATE audit_entries SET leaf_hash = 'zz' WHERE idx = :i", i=TARGET)
    _assert_first(_verify(sqlite_log), TamperKind.LEAF_HASH_ALTERED, TARGET)


def test_private_value_stored_as_a_blob(sqlite_log: AuditLog) -> None:
    _sql(
        sqlite_log, "UPDATE audit_openings SET value = CAST(value AS BLOB) WHERE idx = :i", i=TARGET
    )
    _assert_first(_verify(sqlite_log), TamperKind.PRIVATE_VALUE_ALTERED, TARGET)


def test_erasure_record_naming_no_entry(sqlite_log: AuditLog) -> None:
    _sql(
        sqlite_log,
        "DELETE FROM audit_openings WHERE idx = :i",
        "INSERT INTO audit_erasures VALUES (:i, 0, 'someone', 'none', 'the next one')",
        i=TARGET,
    )
    _assert_first(_verify(sqlite_log), TamperKind.ERASURE_UNLOGGED, TARGET)


def test_checkpoint_stored_as_a_blob(sqlite_log: AuditLog) -> None:
    _sql(sqlite_log, "UPDATE audit_checkpoints SET note = CAST(note AS BLOB) WHERE size = 50")
    report = _verify(sqlite_log)
    _assert_first(report, TamperKind.CHECKPOINT_MALFORMED, None, 50)
    assert report.signed_size == 120


def test_entry_deleted(log: AuditLog) -> None:
    _sql(log, "DELETE FROM audit_entries WHERE idx = :i", i=TARGET)
    _assert_first(_verify(log), TamperKind.ENTRY_DELETED, TARGET)


def test_entry_deleted_and_later_entries_renumbered(log: AuditLog) -> None:
    _sql(
        log,
        "DELETE FROM audit_entries WHERE idx = :i",
        "DELETE FROM audit_openings WHERE idx = :i",
        i=TARGET,
    )
    _shift(log, TARGET + 1, -1)
    _assert_first(_verify(log), TamperKind.ENTRY_DELETED, TARGET)


def test_two_entries_swapped(log: AuditLog) -> None:
    for table in ("audit_entries", "audit_openings"):
        _sql(
            log,
            f"UPDATE {table} SET idx = -1 WHERE idx = :a",  # noqa: S608
            f"UPDATE {table} SET idx = :a WHERE idx = :b",  # noqa: S608
            f"UPDATE {table} SET idx = :b WHERE idx = -1",  # noqa: S608
            a=TARGET,
            b=TARGET + 3,
        )
    _assert_first(_verify(log), TamperKind.ENTRIES_REORDERED, TARGET)


def test_entry_inserted(log: AuditLog) -> None:
    _shift(log, TARGET, 1)
    body = b'{"actor":"mallory","kind":"fetch","time":"2025-01-01T00:00:00.000000Z"}'
    leaf = b'{"entry":%s,"index":%d,"v":1}' % (body, TARGET)
    _sql(
        log,
        "INSERT INTO audit_entries (idx, leaf, leaf_hash, time_us, kind, actor)"
        " VALUES (:i, :l, :h, 0, 'fetch', 'mallory')",
        i=TARGET,
        l=leaf,
        h=hashlib.sha256(b"\x00" + leaf).digest(),
    )
    _assert_first(_verify(log), TamperKind.ENTRY_INSERTED, TARGET)


def test_log_truncated(log: AuditLog) -> None:
    _sql(
        log,
        "DELETE FROM audit_entries WHERE idx >= :i",
        "DELETE FROM audit_openings WHERE idx >= :i",
        i=TARGET,
    )
    _assert_first(_verify(log), TamperKind.LOG_TRUNCATED, TARGET, 75)


def _timed_log(open_log: OpenLog, minutes_apart_until: int) -> AuditLog:
    """120 entries as the ``log`` fixture's, written a minute apart up to entry
    ``minutes_apart_until`` and a second apart after it."""
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    log = open_log(checkpoint_interval=60, checkpoint_entries=25)
    for i in range(120):
        spacing = timedelta(
            minutes=min(i, minutes_apart_until), seconds=max(0, i - minutes_apart_until)
        )
        log.append(make_entry(i, time=start + spacing))
    log.close()
    return log


def test_checkpoints_deleted_and_the_entries_after_them_rewritten(open_log: OpenLog) -> None:
    log = _timed_log(open_log, 120)
    _sql(log, "DELETE FROM audit_checkpoints WHERE size > 75")
    allowed = b'"decision":"allow"'
    for index in range(75, 120):
        if allowed in _leaf(log, index):
            rewrite_entry(log.store.engine, index, allowed, b'"decision":"deny"')
    report = _verify(log)
    # Nothing signed covers entries 75 to 119, and they say they were written over 44
    # minutes: the log would have signed them within a second.
    _assert_first(report, TamperKind.CHECKPOINT_MISSING, 75)
    assert "entries 75 to 119, written over 44 min," in report.findings[0].detail
    assert (report.signed_size, report.unsigned) == (75, 45)


def test_newest_entries_not_yet_signed_are_not_a_finding(open_log: OpenLog) -> None:
    log = _timed_log(open_log, 100)
    # As a crash leaves it: the last few entries written, their checkpoint not yet.
    _sql(log, "DELETE FROM audit_checkpoints WHERE size > 100")
    report = _verify(log)
    assert report.ok, report.findings
    assert (report.signed_size, report.unsigned) == (100, 20)
    assert report.unsigned_times is not None
    earliest, latest = report.unsigned_times
    assert latest - earliest == 19_000_000


def test_the_window_entries_may_wait_for_a_checkpoint_is_a_parameter(open_log: OpenLog) -> None:
    log = _timed_log(open_log, 100)
    _sql(log, "DELETE FROM audit_checkpoints WHERE size > 100")
    # Entries 100 to 119 were written over 19 s: within the default window, not 10 s.
    assert verify_store(log.store, log.verifier, max_unsigned_span=19).ok
    report = verify_store(log.store, log.verifier, max_unsigned_span=10)
    _assert_first(report, TamperKind.CHECKPOINT_MISSING, 100)
    assert "entries 100 to 119, written over 19 s," in report.findings[0].detail
    for refused in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="max_unsigned_span"):
            verify_store(log.store, log.verifier, max_unsigned_span=refused)


def _note(log: AuditLog, size: int) -> str:
    return log.store.checkpoint_at(size)


def _replace_note(log: AuditLog, size: int, note: str) -> None:
    _sql(log, "UPDATE audit_checkpoints SET note = :n WHERE size = :s", n=note, s=size)


def test_checkpoint_signature_altered(log: AuditLog) -> None:
    note = _note(log, 50)
    body, _, line = note.rstrip("\n").rpartition("\n")
    name, _, encoded = line.rpartition(" ")
    raw = bytearray(base64.b64decode(encoded))
    raw[10] ^= 1
    _replace_note(log, 50, f"{body}\n{name} {base64.b64encode(bytes(raw)).decode()}\n")
    report = _verify(log)
    _assert_first(report, TamperKind.CHECKPOINT_SIGNATURE_INVALID, None, 50)
    assert report.signed_size == 120


def test_checkpoint_signed_by_another_key(log: AuditLog) -> None:
    note = _note(log, 50)
    body = note.partition("\n\n")[0] + "\n"
    other = NoteSigner.generate(log.origin)
    _replace_note(log, 50, body + "\n" + other.signature_line(body))
    _assert_first(_verify(log), TamperKind.CHECKPOINT_UNKNOWN_KEY, None, 50)


def test_cosignatures_by_unknown_keys_are_ignored(log: AuditLog) -> None:
    witness = NoteSigner.generate("witness.example")
    _replace_note(log, 50, cosign(_note(log, 50), witness))
    assert _verify(log).ok


def _forge(log: AuditLog, signer: NoteSigner, size: int) -> str:
    other_root = hashlib.sha256(b"another history").digest()
    return sign_checkpoint(Checkpoint(log.origin, size, other_root), signer)


def test_checkpoint_inconsistent_with_earlier_and_later_ones(
    log: AuditLog, signer: NoteSigner
) -> None:
    _replace_note(log, 75, _forge(log, signer, 75))
    _assert_first(_verify(log), TamperKind.CHECKPOINT_FORK, None, 75)


def test_latest_checkpoint_forks_from_the_log(log: AuditLog, signer: NoteSigner) -> None:
    _replace_note(log, 120, _forge(log, signer, 120))
    _assert_first(_verify(log), TamperKind.CHECKPOINT_FORK, None, 120)


def test_bundle_verifies_and_reports_tamper(log: AuditLog, tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl.gz"
    summary = export_bundle(log.store, path)
    assert (summary.entries, summary.checkpoints) == (120, 5)
    assert verify_bundle(path, log.verifier).ok
    import gzip

    lines = gzip.decompress(path.read_bytes()).splitlines()
    line = orjson.loads(lines[6 + TARGET])
    assert line["i"] == TARGET
    line["leaf"] = line["leaf"].replace('"decision":"allow"', '"decision":"deny"')
    lines[6 + TARGET] = orjson.dumps(line)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_bytes(b"\n".join(lines) + b"\n")
    _assert_first(verify_bundle(tampered, log.verifier), TamperKind.ENTRY_ALTERED, TARGET)
    del lines[6 + TARGET]
    tampered.write_bytes(b"\n".join(lines) + b"\n")
    _assert_first(verify_bundle(tampered, log.verifier), TamperKind.ENTRY_DELETED, TARGET)
