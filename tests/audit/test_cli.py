"""``junction audit``: the commands an IG officer runs, on a real log and real key files."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from audit import DEFAULT_ORIGIN, AuditLog, NoteSigner, merkle
from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.cli import app
from connectors.protocol.keys import generate_key_files
from tests.audit.conftest import make_entry
from tests.audit.tampering import rewrite_entry

runner = CliRunner()


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    generate_key_files(tmp_path / "keys", "log")
    return tmp_path / "keys"


@pytest.fixture
def signer(keys: Path) -> NoteSigner:
    return NoteSigner.from_pem(keys / "log.key", DEFAULT_ORIGIN)


@pytest.fixture
def db(tmp_path: Path, signer: NoteSigner) -> str:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    with AuditLog.open(url, signer, checkpoint_interval=60, checkpoint_entries=10) as log:
        for i in range(30):
            log.append(make_entry(i))
    return url


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_verify_ok_and_tampered(db: str, keys: Path) -> None:
    code, out = _run("verify", "--db", db, "--public-key", str(keys / "log.pub"))
    assert code == 0, out
    assert "OK: 30 entries, 3 checkpoints" in out
    engine = sa.create_engine(db)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_entries SET leaf_hash = zeroblob(32) WHERE idx = 5"))
    engine.dispose()
    code, out = _run("verify", "--db", db, "--public-key", str(keys / "log.pub"))
    assert code == 1
    assert "TAMPERED: leaf_hash_altered at entry 5" in out


def test_a_script_reading_the_output_gets_the_report_alone(
    db: str, keys: Path, tmp_path: Path
) -> None:
    # Output to a pipe or a file: no progress bar, and nothing but the report on stdout.
    verify = runner.invoke(app, ["verify", "--db", db, "--public-key", str(keys / "log.pub")])
    assert verify.stdout.startswith("log junction.local/audit, trusted log key hash "), (
        verify.stdout
    )
    assert verify.stderr == ""
    # One line a finding or result, however long: a script splits on newlines.
    assert verify.stdout.splitlines()[1].startswith(
        "OK: 30 entries, 3 checkpoints (the latest that verified signs 30 entries), 0 erased; "
    )
    bundle = tmp_path / "log.jsonl"
    export = runner.invoke(app, ["export", "--db", db, "--out", str(bundle)])
    assert export.stdout == f"exported 30 entries and 3 checkpoints to {bundle}\n"
    assert export.stderr == ""


def test_verify_says_which_entries_no_checkpoint_covers(db: str, keys: Path) -> None:
    engine = sa.create_engine(db)
    with engine.begin() as conn:  # as a crash leaves it: the newest checkpoint not yet signed
        conn.execute(sa.text("DELETE FROM audit_checkpoints WHERE size = 30"))
    engine.dispose()
    code, out = _run("verify", "--db", db, "--public-key", str(keys / "log.pub"))
    assert code == 0, out
    assert "entries 20 to 29 are not covered by a signed checkpoint (written" in " ".join(
        out.split()
    )


def test_verify_reports_deleted_checkpoints_over_a_long_unsigned_tail(
    tmp_path: Path, signer: NoteSigner, keys: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'timed.db'}"
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    with AuditLog.open(url, signer, checkpoint_interval=60, checkpoint_entries=10) as log:
        for i in range(30):
            log.append(make_entry(i, time=start + timedelta(minutes=i)))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_checkpoints WHERE size > 10"))
    engine.dispose()
    code, out = _run("verify", "--db", url, "--public-key", str(keys / "log.pub"))
    assert code == 1, out
    assert (
        "TAMPERED: checkpoint_missing at entry 10: entries 10 to 29, written over 19 min, are"
        " covered by no signed checkpoint"
    ) in " ".join(out.split())


def _two_minute_unsigned_tail(tmp_path: Path, signer: NoteSigner) -> str:
    """A log whose entries 10 to 22, written 10 s apart, no checkpoint covers."""
    url = f"sqlite:///{tmp_path / 'tail.db'}"
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    with AuditLog.open(url, signer, checkpoint_interval=60, checkpoint_entries=10) as log:
        for i in range(23):
            log.append(make_entry(i, time=start + timedelta(seconds=10 * max(0, i - 10))))
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_checkpoints WHERE size > 10"))
    engine.dispose()
    return url


def test_verify_max_unsigned_span_sets_how_long_entries_may_wait(
    tmp_path: Path, signer: NoteSigner, keys: Path
) -> None:
    url = _two_minute_unsigned_tail(tmp_path, signer)
    verify = ("verify", "--db", url, "--public-key", str(keys / "log.pub"))
    code, out = _run(*verify)
    assert code == 0, out
    assert "entries 10 to 22 are not covered by a signed checkpoint" in " ".join(out.split())
    code, out = _run(*verify, "--max-unsigned-span", "120")
    assert code == 0, out
    code, out = _run(*verify, "--max-unsigned-span", "60")
    assert code == 1, out
    assert (
        "TAMPERED: checkpoint_missing at entry 10: entries 10 to 22, written over 2 min, are"
        " covered by no signed checkpoint"
    ) in " ".join(out.split())


@pytest.mark.parametrize("value", ["-1", "five minutes", "nan", "inf", ""])
def test_verify_refuses_a_max_unsigned_span_that_is_no_span(
    db: str, keys: Path, value: str
) -> None:
    code, out = _run(
        "verify", "--db", db, "--public-key", str(keys / "log.pub"), "--max-unsigned-span", value
    )
    assert code == 2, out
    assert out.strip() == (
        f"error: --max-unsigned-span: {value!r} is not a number of seconds, 0 or more"
        " (the default is 300)"
    )


def test_verify_with_another_key_trusts_nothing(db: str, tmp_path: Path) -> None:
    generate_key_files(tmp_path / "other", "log")
    code, out = _run("verify", "--db", db, "--public-key", str(tmp_path / "other" / "log.pub"))
    assert code == 1
    assert "checkpoint_unknown_key" in out


def test_export_then_verify_and_prove_from_the_bundle(db: str, keys: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "audit.jsonl.gz"
    code, out = _run("export", "--db", db, "--out", str(bundle))
    assert code == 0, out
    assert "exported 30 entries and 3 checkpoints" in out
    pub = str(keys / "log.pub")
    code, out = _run("verify", "--bundle", str(bundle), "--public-key", pub)
    assert code == 0, out
    code, out = _run(
        "prove", "--index", "17", "--bundle", str(bundle), "--public-key", pub, "--json"
    )
    assert code == 0, out
    receipt = json.loads(out)
    proof = [bytes.fromhex(h) for h in receipt["inclusion_proof"]]
    root = base64.b64decode(receipt["root_hash"])
    merkle.verify_inclusion(bytes.fromhex(receipt["leaf_hash"]), 17, 30, proof, root)
    assert receipt["entry"]["exchange_id"] == "x-17"
    assert merkle.leaf_hash(base64.b64decode(receipt["leaf_base64"])).hex() == receipt["leaf_hash"]


def test_prove_from_the_database(db: str, keys: Path) -> None:
    code, out = _run("prove", "--index", "3", "--db", db, "--public-key", str(keys / "log.pub"))
    assert code == 0, out
    assert "OK: entry 3 is in the tree of 30 entries" in out
    code, out = _run(
        "prove", "--index", "3", "--db", db, "--public-key", str(keys / "log.pub"), "--json"
    )
    assert code == 0, out
    receipt = json.loads(out)
    # The leaf exactly as hashed: the proof checks without this program's parse of it.
    leaf = base64.b64decode(receipt["leaf_base64"])
    assert leaf == receipt["leaf"].encode()
    assert json.loads(leaf)["entry"] == receipt["entry"]
    assert hashlib.sha256(b"\x00" + leaf).hexdigest() == receipt["leaf_hash"]
    merkle.verify_inclusion(
        hashlib.sha256(b"\x00" + leaf).digest(),
        3,
        receipt["tree_size"],
        [bytes.fromhex(h) for h in receipt["inclusion_proof"]],
        base64.b64decode(receipt["root_hash"]),
    )
    code, out = _run("prove", "--index", "30", "--db", db, "--public-key", str(keys / "log.pub"))
    assert code == 1
    assert "not covered by the latest checkpoint" in out


def test_consistency_with_a_kept_checkpoint(
    db: str, keys: Path, tmp_path: Path, signer: NoteSigner
) -> None:
    kept = tmp_path / "kept.checkpoint"
    code, out = _run("checkpoint", "--db", db, "--out", str(kept))
    assert code == 0, out
    assert kept.read_text().startswith(f"{DEFAULT_ORIGIN}\n30\n")
    with AuditLog.open(db, signer) as log:
        for i in range(13):
            log.append(make_entry(100 + i))
    pub = str(keys / "log.pub")
    code, out = _run("consistency", "--old", str(kept), "--db", db, "--public-key", pub)
    assert code == 0, out
    assert "extends your checkpoint of 30 entries" in out
    # Kept by copying from a terminal: final newline lost, or an extra one added.
    for copied in (kept.read_text().rstrip("\n"), kept.read_text() + "\n"):
        kept.write_text(copied)
        code, out = _run("consistency", "--old", str(kept), "--db", db, "--public-key", pub)
        assert code == 0, out
    forked = Checkpoint(DEFAULT_ORIGIN, 30, hashlib.sha256(b"elsewhere").digest())
    kept.write_text(sign_checkpoint(forked, signer))
    code, out = _run("consistency", "--old", str(kept), "--db", db, "--public-key", pub)
    assert code == 1
    assert "does NOT extend your checkpoint of size 30" in out


def _rewrite(db: str, index: int) -> None:
    engine = sa.create_engine(db)
    try:
        rewrite_entry(engine, index, b'"purpose":"early_help"', b'"purpose":"safeguarding"')
    finally:
        engine.dispose()


def _kept_then_grown(db: str, tmp_path: Path, signer: NoteSigner) -> Path:
    """Keep the log's checkpoint (30 entries), then append 13 more; the kept file."""
    kept = tmp_path / "kept.checkpoint"
    assert _run("checkpoint", "--db", db, "--out", str(kept))[0] == 0
    with AuditLog.open(db, signer, checkpoint_interval=60, checkpoint_entries=10) as log:
        for i in range(13):
            log.append(make_entry(100 + i))
    return kept


def test_consistency_recomputes_the_entries_it_vouches_for(
    db: str, keys: Path, tmp_path: Path, signer: NoteSigner
) -> None:
    kept = _kept_then_grown(db, tmp_path, signer)
    _rewrite(db, 5)
    pub = str(keys / "log.pub")
    code, out = _run("consistency", "--old", str(kept), "--db", db, "--public-key", pub)
    assert code == 1, out
    assert "TAMPERED: entry_altered at entry 4: entry 4 or 5 was rewritten" in out
    assert "error: the log does NOT extend your checkpoint of size 30" in out
    bundle = tmp_path / "audit.jsonl"
    assert _run("export", "--db", db, "--out", str(bundle))[0] == 0
    code, out = _run(
        "consistency", "--old", str(kept), "--bundle", str(bundle), "--public-key", pub
    )
    assert code == 1, out
    assert "TAMPERED: history_rewritten at entry 0" in out
    assert "error: the log does NOT extend your checkpoint of size 30" in out


def test_consistency_names_damage_after_the_kept_checkpoint(
    db: str, keys: Path, tmp_path: Path, signer: NoteSigner
) -> None:
    kept = _kept_then_grown(db, tmp_path, signer)
    _rewrite(db, 34)
    pub = str(keys / "log.pub")
    code, out = _run("consistency", "--old", str(kept), "--db", db, "--public-key", pub)
    assert code == 1, out
    assert "TAMPERED: entry_altered at entry 34" in out
    assert "error: the first 30 entries still match your checkpoint" in out


def test_consistency_takes_the_unsigned_span_verify_takes(
    tmp_path: Path, signer: NoteSigner, keys: Path
) -> None:
    url = _two_minute_unsigned_tail(tmp_path, signer)
    kept = tmp_path / "kept.checkpoint"
    assert _run("checkpoint", "--db", url, "--out", str(kept))[0] == 0
    pub = str(keys / "log.pub")
    consistency = ("consistency", "--old", str(kept), "--db", url, "--public-key", pub)
    code, out = _run(*consistency)
    assert code == 0, out
    assert "extends your checkpoint of 10 entries" in out
    code, out = _run(*consistency, "--max-unsigned-span", "60")
    assert code == 1, out
    assert "TAMPERED: checkpoint_missing at entry 10" in out
    assert "error: the first 10 entries still match your checkpoint" in out
    code, out = _run(*consistency, "--max-unsigned-span", "soon")
    assert code == 2, out
    assert out.strip() == (
        "error: --max-unsigned-span: 'soon' is not a number of seconds, 0 or more"
        " (the default is 300)"
    )


def test_usage_errors_are_one_line(db: str, keys: Path, tmp_path: Path) -> None:
    code, out = _run("verify", "--public-key", str(keys / "log.pub"))
    assert code == 2
    assert "error: give exactly one of --db URL or --bundle FILE" in out
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    code, out = _run("verify", "--db", missing, "--public-key", str(keys / "log.pub"))
    assert code == 2
    assert "error: there is no audit database at" in out
    assert not (tmp_path / "none.db").exists()
    not_a_database = tmp_path / "notes.db"
    not_a_database.write_text("# some notes, not a database\n" * 200)
    url = f"sqlite:///{not_a_database}"
    code, out = _run("verify", "--db", url, "--public-key", str(keys / "log.pub"))
    assert code == 2
    assert out.strip() == "error: cannot read the log's database: file is not a database"


def test_the_junction_command_runs_it_without_a_traceback(db: str, tmp_path: Path) -> None:
    junction = Path(sys.executable).with_name("junction")
    result = subprocess.run(
        [str(junction), "audit", "verify", "--db", db, "--public-key", str(tmp_path / "no.pub")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
