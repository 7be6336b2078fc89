"""A database whose values have types the log never writes, or that lacks a table the
log is read from: a finding at the entry concerned (exit 1), or one error line (exit 2),
never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.audit.cli_log import LogOnDisk, one_line, run, write_log


@pytest.fixture
def log(tmp_path: Path) -> LogOnDisk:
    return write_log(tmp_path / "log")


@pytest.fixture
def kept(log: LogOnDisk, tmp_path: Path) -> Path:
    """The log's checkpoint of 30 entries, kept before anything was changed."""
    path = tmp_path / "kept.checkpoint"
    assert run("checkpoint", "--db", log.url, "--out", str(path))[0] == 0
    return path


def _damage(log: LogOnDisk, statement: str) -> None:
    engine = sa.create_engine(log.url)
    with engine.begin() as conn:
        conn.execute(sa.text(statement))
    engine.dispose()


MISSTORED = {
    "a leaf stored as text": (
        "UPDATE audit_entries SET leaf = 'hello' WHERE idx = 3",
        "entry_altered at entry 3: entry 3 is stored as text, not as the bytes that were hashed",
    ),
    "a leaf stored as a number": (
        "UPDATE audit_entries SET leaf = 5 WHERE idx = 3",
        "entry_altered at entry 3: entry 3 is stored as an integer, not as the bytes that were"
        " hashed",
    ),
    "a leaf stored as text that is not UTF-8": (
        "UPDATE audit_entries SET leaf = x'ff' || leaf WHERE idx = 3",
        "entry_altered at entry 3: entry 3 is stored as text that is not UTF-8, not as the"
        " bytes that were hashed",
    ),
    "a salt stored as text": (
        "UPDATE audit_openings SET salt = 'zz' WHERE idx = 5 AND name = 'case_ref'",
        "private_value_altered at entry 5: the salt of private value 'case_ref' of entry 5 is"
        " stored as text, not as bytes",
    ),
    "a private value stored as a blob": (
        "UPDATE audit_openings SET value = x'ff00' WHERE idx = 5 AND name = 'case_ref'",
        "private_value_altered at entry 5: private value 'case_ref' of entry 5 is stored as a"
        " blob, not text",
    ),
    "a private value that is not UTF-8": (
        "UPDATE audit_openings SET value = x'ff' || value WHERE idx = 5 AND name = 'case_ref'",
        "private_value_altered at entry 5: private value 'case_ref' of entry 5 is stored as"
        " text that is not UTF-8",
    ),
    "an erasure record naming no entry": (
        "INSERT INTO audit_erasures VALUES (20, 1, 'someone', 'a reason', 'abc')",
        "erasure_unlogged at entry 20: entry 20 is marked as erased, but its erasure record"
        " names text where the erasure entry's index belongs",
    ),
    "a checkpoint stored as a blob": (
        "UPDATE audit_checkpoints SET note = x'ff00' WHERE size = 20",
        "checkpoint_malformed at checkpoint 20: the checkpoint of size 20 is stored as a blob,"
        " not text",
    ),
}


@pytest.mark.parametrize("damage", MISSTORED)
@pytest.mark.parametrize("command", ["verify", "consistency", "export"])
def test_a_value_of_another_type_is_reported_where_it_is(
    log: LogOnDisk, kept: Path, tmp_path: Path, damage: str, command: str
) -> None:
    statement, finding = MISSTORED[damage]
    _damage(log, statement)
    key = ("--public-key", str(log.public_key))
    bundle = tmp_path / "audit.jsonl"
    args = {
        "verify": ("verify", "--db", log.url, *key),
        "consistency": ("consistency", "--old", str(kept), "--db", log.url, *key),
        "export": ("export", "--db", log.url, "--out", str(bundle)),
    }[command]
    code, printed = run(*args)
    assert code == 1, printed
    assert f"TAMPERED: {finding}" in one_line(printed)
    if command == "export":
        assert one_line(printed).endswith(
            "error: cannot export the log: the log is damaged (see above)"
        )
        assert not bundle.exists()


@pytest.mark.parametrize(
    ("damage", "index"),
    [
        ("a leaf stored as text", 3),
        ("a leaf stored as a number", 3),
        ("a leaf stored as text that is not UTF-8", 3),
        ("an erasure record naming no entry", 20),
    ],
)
def test_an_entry_stored_as_no_log_writes_it_is_not_proved(
    log: LogOnDisk, damage: str, index: int
) -> None:
    statement, finding = MISSTORED[damage]
    _damage(log, statement)
    code, printed = run(
        "prove", "--index", str(index), "--db", log.url, "--public-key", str(log.public_key)
    )
    assert code == 1, printed
    assert one_line(printed) == (
        f"TAMPERED: {finding} error: cannot prove entry {index}: the log is damaged (see above)"
    )


def test_a_leaf_hash_stored_as_text_is_told_from_a_changed_entry(
    log: LogOnDisk, tmp_path: Path
) -> None:
    _damage(log, "UPDATE audit_entries SET leaf_hash = 'zz' WHERE idx = 3")
    key = ("--public-key", str(log.public_key))
    code, printed = run("verify", "--db", log.url, *key)
    assert code == 1, printed
    assert (
        "TAMPERED: leaf_hash_altered at entry 3: the stored leaf hash of entry 3 was changed;"
        " the entry itself is intact"
    ) in one_line(printed)
    # A proof from the database is built from the stored hashes, entry 3's among them.
    code, printed = run("prove", "--index", "2", "--db", log.url, *key)
    assert code == 1, printed
    assert one_line(printed).startswith("error: entry 2 is NOT in the signed tree:")
    code, printed = run("export", "--db", log.url, "--out", str(tmp_path / "audit.jsonl"))
    assert code == 1, printed
    assert one_line(printed) == (
        "TAMPERED: leaf_hash_altered at entry 3: the leaf hash of entry 3 is stored as text,"
        " not as bytes error: cannot export the log: the log is damaged (see above)"
    )


def test_a_latest_checkpoint_stored_as_a_blob_is_neither_given_nor_trusted(
    log: LogOnDisk, tmp_path: Path
) -> None:
    _damage(log, "UPDATE audit_checkpoints SET note = x'ff00' WHERE size = 30")
    code, printed = run("checkpoint", "--db", log.url, "--out", str(tmp_path / "kept"))
    assert code == 1, printed
    assert one_line(printed) == (
        "TAMPERED: checkpoint_malformed at checkpoint 30: the checkpoint of size 30 is stored"
        " as a blob, not text error: cannot give the latest checkpoint: the log is damaged"
        " (see above)"
    )
    assert not (tmp_path / "kept").exists()
    code, printed = run(
        "prove", "--index", "3", "--db", log.url, "--public-key", str(log.public_key)
    )
    assert code == 1, printed
    assert one_line(printed) == (
        "error: the log's latest checkpoint does not verify: the checkpoint of size 30 is"
        " stored as a blob, not text"
    )


@pytest.mark.parametrize("table", ["audit_openings", "audit_erasures"])
@pytest.mark.parametrize("command", ["verify", "prove", "consistency", "checkpoint", "export"])
def test_a_missing_table_is_one_error_line(
    log: LogOnDisk, kept: Path, tmp_path: Path, table: str, command: str
) -> None:
    _damage(log, f"DROP TABLE {table}")
    key = ("--public-key", str(log.public_key))
    args = {
        "verify": ("verify", "--db", log.url, *key),
        "prove": ("prove", "--index", "3", "--db", log.url, *key),
        "consistency": ("consistency", "--old", str(kept), "--db", log.url, *key),
        "checkpoint": ("checkpoint", "--db", log.url),
        "export": ("export", "--db", log.url, "--out", str(tmp_path / "audit.jsonl")),
    }[command]
    code, printed = run(*args)
    assert code == 2, printed
    assert printed.strip() == (
        f"error: the audit database has no {table} table: it was damaged, or is not a whole"
        " Junction audit log"
    )
