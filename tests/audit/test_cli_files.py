"""``junction audit export`` and ``checkpoint --out``: what they do to files already there."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.audit.cli_log import LogOnDisk, one_line, run, write_log


@pytest.fixture
def log(tmp_path: Path) -> LogOnDisk:
    return write_log(tmp_path / "log")


def _names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


@pytest.mark.parametrize("command", ["export", "checkpoint"])
@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize("spelling", ["the path", "a link to it"])
def test_out_never_writes_over_the_database_being_read(
    log: LogOnDisk, tmp_path: Path, command: str, force: list[str], spelling: str
) -> None:
    out = log.path
    if spelling == "a link to it":
        out = tmp_path / "link.db"
        out.symlink_to(log.path)
    before = log.path.read_bytes()
    code, printed = run(command, "--db", log.url, "--out", str(out), *force)
    assert code == 2, printed
    assert printed.strip() == f"error: {out} is the log's own database; write to another file"
    assert log.path.read_bytes() == before
    assert run("verify", "--db", log.url, "--public-key", str(log.public_key))[0] == 0


@pytest.mark.parametrize(
    ("command", "name"), [("export", "kept.jsonl.gz"), ("checkpoint", "kept.checkpoint")]
)
def test_out_replaces_a_file_that_is_there_only_with_force(
    log: LogOnDisk, tmp_path: Path, command: str, name: str
) -> None:
    kept = tmp_path / name
    kept.write_bytes(b"kept by the officer a month ago\n")
    code, printed = run(command, "--db", log.url, "--out", str(kept))
    assert code == 2, printed
    assert printed.strip() == f"error: {kept} already exists; pass --force to replace it"
    assert kept.read_bytes() == b"kept by the officer a month ago\n"
    code, printed = run(command, "--db", log.url, "--out", str(kept), "--force")
    assert code == 0, printed
    assert _names(tmp_path) == sorted(["log", name])  # no temporary file left beside it
    if command == "checkpoint":
        assert kept.read_text().startswith("junction.local/audit\n30\n")
    else:
        code, printed = run("verify", "--bundle", str(kept), "--public-key", str(log.public_key))
        assert code == 0, printed


def test_a_failed_export_leaves_the_earlier_bundle_as_it_was(
    log: LogOnDisk, tmp_path: Path
) -> None:
    bundle = tmp_path / "audit.jsonl.gz"
    assert run("export", "--db", log.url, "--out", str(bundle))[0] == 0
    before = bundle.read_bytes()
    engine = sa.create_engine(log.url)
    with engine.begin() as conn:  # export stops at entry 25, after writing the rest
        conn.execute(sa.text("UPDATE audit_entries SET leaf = 5 WHERE idx = 25"))
    engine.dispose()
    code, printed = run("export", "--db", log.url, "--out", str(bundle), "--force")
    assert code == 1, printed
    assert one_line(printed) == (
        "TAMPERED: entry_altered at entry 25: entry 25 is stored as an integer, not as the"
        " bytes that were hashed error: cannot export the log: the log is damaged (see above)"
    )
    assert bundle.read_bytes() == before
    assert _names(tmp_path) == ["audit.jsonl.gz", "log"]


@pytest.mark.parametrize("command", ["export", "checkpoint"])
def test_a_file_that_cannot_be_written_is_named(log: LogOnDisk, command: str) -> None:
    code, printed = run(command, "--db", log.url, "--out", "/dev/full")
    assert code == 2, printed
    assert printed.strip() == "error: cannot write /dev/full: No space left on device"
