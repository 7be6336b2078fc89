"""The commands that read a log change nothing: not the log, nor any other SQLite file,
and they read a log on storage they cannot write to, its newest entries included."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from audit import AuditLog, _readonly
from tests.audit.cli_log import LogOnDisk, run, write_log
from tests.audit.conftest import make_entry

READ_ONLY_COMMANDS = ["verify", "prove", "consistency", "checkpoint", "export"]


@pytest.fixture
def log(tmp_path: Path) -> LogOnDisk:
    return write_log(tmp_path / "log")


@pytest.fixture
def kept(log: LogOnDisk, tmp_path: Path) -> Path:
    """A checkpoint of ``log`` kept outside it, for ``consistency``."""
    path = tmp_path / "kept.checkpoint"
    assert run("checkpoint", "--db", log.url, "--out", str(path))[0] == 0
    return path


def _command(name: str, url: str, log: LogOnDisk, kept: Path, out: Path) -> list[str]:
    key = ["--public-key", str(log.public_key)]
    return {
        "verify": ["verify", "--db", url, *key],
        "prove": ["prove", "--index", "3", "--db", url, *key],
        "consistency": ["consistency", "--old", str(kept), "--db", url, *key],
        "checkpoint": ["checkpoint", "--db", url],
        "export": ["export", "--db", url, "--out", str(out)],
    }[name]


def _state(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` and its bytes."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def _journal_mode(path: Path) -> bytes:
    """The file format bytes of a SQLite header: 01 01 rollback journal, 02 02 WAL."""
    return path.read_bytes()[18:20]


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder whose files and itself are write-protected once filled (as a copy of a
    log handed over on read-only media would be); root can still write to it."""
    folder = tmp_path / "media"
    folder.mkdir()
    yield folder
    folder.chmod(0o755)


def _protect(folder: Path) -> None:
    for path in folder.iterdir():
        path.chmod(0o444)
    folder.chmod(0o555)


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS)
def test_another_sqlite_database_is_left_as_it_was(
    log: LogOnDisk, kept: Path, tmp_path: Path, command: str
) -> None:
    folder = tmp_path / "agency"
    folder.mkdir()
    plain = folder / "police.db"
    with sqlite3.connect(plain) as conn:
        conn.execute("CREATE TABLE person (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO person (name) VALUES ('Alex')")
    conn.close()
    before = _state(folder)
    code, printed = run(*_command(command, f"sqlite:///{plain}", log, kept, tmp_path / "x.jsonl"))
    assert code == 2, printed
    assert printed.strip() == "error: that database holds no audit log: check the URL"
    assert _state(folder) == before
    assert _journal_mode(plain) == b"\x01\x01"


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS)
def test_an_empty_file_stays_empty(
    log: LogOnDisk, kept: Path, tmp_path: Path, command: str
) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "e.db").touch()
    url = f"sqlite:///{folder / 'e.db'}"
    code, printed = run(*_command(command, url, log, kept, tmp_path / "x.jsonl"))
    assert code == 2, printed
    assert printed.strip() == "error: that database holds no audit log: check the URL"
    assert _state(folder) == {"e.db": b""}


@pytest.mark.parametrize("command", READ_ONLY_COMMANDS)
def test_a_log_on_read_only_storage_is_read_and_left_as_it_was(
    log: LogOnDisk, kept: Path, read_only: Path, tmp_path: Path, command: str
) -> None:
    copy = read_only / "audit.db"
    with sqlite3.connect(log.path) as source, sqlite3.connect(copy) as target:
        source.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")  # as an operator would hand it over
    source.close()
    target.close()
    _protect(read_only)
    before = _state(read_only)
    out = tmp_path / "audit.jsonl"
    code, printed = run(*_command(command, f"sqlite:///{copy}", log, kept, out))
    assert code == 0, printed
    assert _state(read_only) == before
    assert _journal_mode(copy) == b"\x01\x01"


def test_a_wal_log_on_read_only_storage_is_read_and_its_file_left_as_it_was(
    log: LogOnDisk, read_only: Path
) -> None:
    copy = read_only / "audit.db"
    shutil.copy(log.path, copy)  # closed cleanly: nothing waits in a -wal file
    assert _journal_mode(copy) == b"\x02\x02"
    _protect(read_only)
    before = copy.read_bytes()
    code, printed = run("verify", "--db", f"sqlite:///{copy}", "--public-key", str(log.public_key))
    assert code == 0, printed
    assert "OK: 30 entries, 3 checkpoints" in printed
    assert copy.read_bytes() == before
    # Where SQLite could create them (root can, anywhere), an empty -wal and its index.
    assert set(_state(read_only)) <= {"audit.db", "audit.db-wal", "audit.db-shm"}
    assert not (read_only / "audit.db-wal").exists() or _state(read_only)["audit.db-wal"] == b""


def test_sqlites_own_read_only_form_of_the_url_is_taken(log: LogOnDisk) -> None:
    url = f"sqlite:///file:{log.path}?mode=ro&uri=true"
    code, printed = run("verify", "--db", url, "--public-key", str(log.public_key))
    assert code == 0, printed
    assert "OK: 30 entries, 3 checkpoints" in printed


def test_entries_still_in_the_write_ahead_log_are_read(log: LogOnDisk) -> None:
    """A live log: its newest entries are in audit.db-wal, not yet in audit.db."""
    with AuditLog.open(log.url, log.signer, checkpoint_interval=60, checkpoint_entries=10) as live:
        for i in range(20):
            live.append(make_entry(100 + i))
        live.sign_checkpoint()
        before = _state(log.path.parent)
        code, printed = run("verify", "--db", log.url, "--public-key", str(log.public_key))
        assert code == 0, printed
        assert "OK: 50 entries" in printed
        after = _state(log.path.parent)
        assert {n: after[n] for n in ("audit.db", "audit.db-wal")} == {
            n: before[n] for n in ("audit.db", "audit.db-wal")
        }


def _as_on_read_only_media(monkeypatch: pytest.MonkeyPatch) -> None:
    """Root may write to a write-protected folder, so SQLite would make the -shm index
    a reader of a -wal needs: give it the answer it gives where it cannot
    (SQLITE_CANTOPEN, "unable to open database file")."""
    opened = _readonly._engine

    def cannot_make_the_index() -> sqlite3.Connection:
        error = sqlite3.OperationalError("unable to open database file")
        error.sqlite_errorcode = sqlite3.SQLITE_CANTOPEN
        raise error

    def engine(path: Path, *, immutable: bool) -> sa.Engine:
        if immutable:
            return opened(path, immutable=True)
        return sa.create_engine("sqlite://", creator=cannot_make_the_index)

    monkeypatch.setattr(_readonly, "_engine", engine)


def test_a_write_ahead_log_that_cannot_be_read_read_only_is_not_ignored(
    log: LogOnDisk, read_only: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with AuditLog.open(log.url, log.signer, checkpoint_interval=60, checkpoint_entries=10) as live:
        for i in range(20):
            live.append(make_entry(100 + i))
        live.sign_checkpoint()
        shutil.copy(log.path, read_only / "audit.db")
        shutil.copy(log.path.with_name("audit.db-wal"), read_only / "audit.db-wal")
    _protect(read_only)
    if os.geteuid() == 0:
        _as_on_read_only_media(monkeypatch)
    before = _state(read_only)
    copy = read_only / "audit.db"
    code, printed = run("verify", "--db", f"sqlite:///{copy}", "--public-key", str(log.public_key))
    assert code == 2, printed
    assert " ".join(printed.split()) == (
        f"error: cannot read {copy} on storage this command may not write to: its"
        " audit.db-wal holds changes not yet in the database file; copy both files to a"
        " folder you can write to and give the copy"
    )
    assert _state(read_only) == before
