"""The broker's SQLite database backed up while it answers, then restored after more
queries ran: what ``docs/operations-faults.md`` ("Backup and restore") promises.

An online backup (SQLite's backup API) taken under load verifies on its own and holds
the registry, the consent register and the log. Restored later, the broker starts on it
as it was; but the connectors asked since hold checkpoints of the longer log it lost,
so each refuses every fetch (409 ``broker-checkpoint-inconsistent``, said in its log as
well), nothing from them is released, and ``junction audit consistency --old`` with a
checkpoint kept from before the restore says the log was rolled back.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.fault_kit import Region, load, query_bodies, running_region, verify_log

pytestmark = pytest.mark.slow
ROLLED_BACK = "fewer than the"
REORDER_WINDOW = 10.0  # JUNCTION_CONNECTOR_CHECKPOINT_REORDER_SECONDS, by default


@pytest.fixture
def region(tmp_path: Path) -> Iterator[Region]:
    with running_region(tmp_path) as running:
        yield running


def _online_backup(database: Path, copy: Path) -> None:
    source = sqlite3.connect(database)
    target = sqlite3.connect(copy)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def _count(database: Path, table: str) -> int:
    with sqlite3.connect(database) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608


def _junction_audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", "audit", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_a_restored_older_backup_is_refused_by_every_connector_that_saw_more(
    region: Region, tmp_path: Path
) -> None:
    database = region.layout.broker_data / "broker.db"
    bodies = query_bodies(region.truth, 24)

    async def load_with_a_backup() -> None:
        running = asyncio.create_task(load(region, bodies[:8], clients=4))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(_online_backup, database, tmp_path / "backup.db")
        await running

    asyncio.run(load_with_a_backup())
    backup = tmp_path / "backup.db"
    verify_log(region, f"sqlite:///{backup}")
    for table in ("broker_agencies", "broker_connectors", "broker_agreements"):
        assert _count(backup, table) == _count(database, table) > 0, table

    later = asyncio.run(load(region, bodies[8:16], clients=2))
    last_fetch = time.monotonic()
    assert all(a.status == 200 and a.body["status"] == "complete" for a in later)
    kept = tmp_path / "kept.note"
    made = _junction_audit("checkpoint", "--db", region.database_url(), "--out", str(kept))
    assert made.returncode == 0, made.stderr

    broker = region.process("broker")
    broker.terminate()
    broker.wait(30)
    for leftover in database.parent.glob("broker.db-*"):
        if leftover.suffix in (".db-wal", ".db-shm"):
            leftover.unlink()
    _online_backup(backup, database)
    region.start_broker()
    # Within its reorder window a connector takes an older checkpoint for a request
    # overtaken in flight; a restore is never that quick in earnest.
    time.sleep(max(0.0, REORDER_WINDOW + 1 - (time.monotonic() - last_fetch)))

    answers = asyncio.run(load(region, bodies[16:20], clients=1))
    refusing: set[str] = set()
    for answer in answers:
        assert answer.status == 200, answer.body
        view = answer.body
        for status in view["agencies"]:
            if ROLLED_BACK in (status["detail"] or ""):
                assert status["status"] == "error"
                assert "truncated or rolled back" in status["detail"]
                refusing.add(status["agency_id"])
        released_from = {
            fact["source_agency"]
            for member in view["members"]
            for facts in member["facts"].values()
            for fact in facts
        }
        assert not released_from & refusing, "a connector that refused still released facts"
    assert refusing, "no connector noticed that the broker's log went backwards"
    for agency in refusing:
        log = (region.processes.log_dir / f"connector-{agency}.log").read_text()
        assert "broker_checkpoint_rejected" in log, f"{agency} said nothing in its log"
        assert "truncated or rolled back" in log

    verify_log(region)  # the restored log is whole in itself...
    checked = _junction_audit(
        "consistency",
        "--old",
        str(kept),
        "--db",
        region.database_url(),
        "--public-key",
        str(region.log_public_key),
    )
    assert checked.returncode == 1  # ...but it does not extend what was seen before
    assert "truncated or rolled back" in checked.stderr
