"""Erasure: personal data leaves the database, the tree still verifies, the act is logged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from audit import AuditLog, Kind, TamperKind, verify_store
from audit.errors import EntryError, EntryNotFound
from tests.audit.conftest import make_entry

OpenLog = Callable[..., AuditLog]


def _everything_stored(log: AuditLog) -> str:
    """Every value in every audit table, as one text to search."""
    text = []
    with log.store.engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            if table.startswith("audit_"):
                for row in conn.execute(sa.text(f"SELECT * FROM {table}")):  # noqa: S608
                    text.extend(
                        v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in row
                    )
    return "\n".join(text)


def test_erased_entry_loses_its_personal_data_and_the_log_still_verifies(
    open_log: OpenLog,
) -> None:
    log = open_log(checkpoint_entries=5)
    for i in range(12):
        log.append(make_entry(i))
    before = log.get(7)
    assert "Concern raised by school, case 7" in _everything_stored(log)

    erasure_index = log.erase(7, by="ig-officer-2", reason="subject request SR-88")

    assert erasure_index == 12
    assert "Concern raised by school, case 7" not in _everything_stored(log)
    if log.store.engine.dialect.name == "sqlite":
        # Not only unreachable through SQL: gone from the files themselves.
        database = Path(str(log.store.engine.url.database))
        for path in (database, database.with_name(database.name + "-wal")):
            if path.exists():
                assert b"Concern raised by school, case 7" not in path.read_bytes()
    assert "C-7" not in _everything_stored(log).split("\n")
    after = log.get(7)
    assert after.private == {}
    assert after.leaf_hash == before.leaf_hash
    assert after.fields == before.fields  # the commitments stay, the openings are gone
    assert after.erasure is not None
    assert (after.erasure.erased_by, after.erasure.reason) == (
        "ig-officer-2",
        "subject request SR-88",
    )
    assert after.erasure.erasure_index == 12
    logged = log.get(12)
    assert (logged.kind, logged.fields["erases"], logged.fields["actor"]) == (
        Kind.ERASURE,
        7,
        "ig-officer-2",
    )
    assert log.get(8).private["case_ref"] == "C-8"
    log.close()
    report = verify_store(log.store, log.verifier)
    assert report.ok, report.findings
    assert report.erased == 1


def test_erasing_twice_or_nothing_is_refused(open_log: OpenLog) -> None:
    log = open_log()
    log.append(make_entry(1))
    log.erase(0, by="ig", reason="request")
    with pytest.raises(EntryError, match="already erased"):
        log.erase(0, by="ig", reason="again")
    with pytest.raises(EntryNotFound):
        log.erase(99, by="ig", reason="none")


def test_erasure_row_pointing_at_an_ordinary_entry_is_reported(open_log: OpenLog) -> None:
    log = open_log()
    for i in range(4):
        log.append(make_entry(i))
    log.close()
    with log.store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_openings WHERE idx = 1"))
        conn.execute(sa.text("INSERT INTO audit_erasures VALUES (1, 0, 'x', 'y', 99)"))
    first = verify_store(log.store, log.verifier).first
    assert first is not None
    assert (first.kind, first.index) == (TamperKind.ERASURE_UNLOGGED, 1)
