"""``junction audit`` names what cannot be used, on one line (exit 2), and keeps exit 1
for a log or checkpoint that does not verify."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit import NoteSigner
from audit.checkpoint import Checkpoint, sign_checkpoint
from tests.audit.cli_log import LogOnDisk, one_line, run, write_log


@pytest.fixture
def log(tmp_path: Path) -> LogOnDisk:
    return write_log(tmp_path / "log")


def _verify(log: LogOnDisk, *more: str) -> tuple[int, str]:
    return run("verify", "--db", log.url, "--public-key", str(log.public_key), *more)


@pytest.mark.parametrize("content", [b"", b"\x00\xff\x10 not text", b"junction.local/audit\n30\n"])
def test_a_kept_checkpoint_file_that_is_no_checkpoint_cannot_be_used(
    log: LogOnDisk, tmp_path: Path, content: bytes
) -> None:
    old = tmp_path / "kept.checkpoint"
    old.write_bytes(content)
    code, printed = run(
        "consistency", "--old", str(old), "--db", log.url, "--public-key", str(log.public_key)
    )
    assert code == 2, printed
    assert one_line(printed).startswith(
        f"error: {old} is not a checkpoint of log junction.local/audit: "
    )
    assert len(printed.strip().splitlines()) == 1


def test_a_kept_checkpoint_signed_by_another_key_does_not_verify(
    log: LogOnDisk, tmp_path: Path
) -> None:
    old = tmp_path / "kept.checkpoint"
    other = NoteSigner.generate("junction.local/audit")
    old.write_text(sign_checkpoint(Checkpoint("junction.local/audit", 30, b"\x00" * 32), other))
    code, printed = run(
        "consistency", "--old", str(old), "--db", log.url, "--public-key", str(log.public_key)
    )
    assert code == 1, printed
    assert one_line(printed).startswith(
        "error: your checkpoint does not verify with this key: checkpoint of size 30 is not"
        " signed by log key junction.local/audit"
    )


def test_an_empty_key_file_is_named(log: LogOnDisk, tmp_path: Path) -> None:
    key = tmp_path / "log.pub"
    key.touch()
    code, printed = run("verify", "--db", log.url, "--public-key", str(key))
    assert (code, printed.strip()) == (
        2,
        f"error: {key} is empty: give the log's public key (a PEM file, or its verifier key)",
    )


def test_a_key_file_that_holds_no_key_is_named(log: LogOnDisk, tmp_path: Path) -> None:
    key = tmp_path / "log.pub"
    key.write_text("the key is in the safe\n")
    code, printed = run("verify", "--db", log.url, "--public-key", str(key))
    assert (code, printed.strip()) == (
        2,
        f"error: {key} is not a public key: neither a PEM file nor a verifier key"
        " (origin+hash+base64 key)",
    )


def test_an_origin_no_key_can_name_is_blamed_on_the_option(log: LogOnDisk) -> None:
    code, printed = _verify(log, "--origin", "bad origin")
    assert (code, printed.strip()) == (
        2,
        "error: --origin: key name 'bad origin' must be non-empty, no spaces or '+'",
    )


@pytest.mark.parametrize("index", ["abc", "1.5", "0x3", "-1", "³"])
def test_an_index_that_is_no_entry_index_is_one_error_line(log: LogOnDisk, index: str) -> None:
    code, printed = run(
        "prove", "--index", index, "--db", log.url, "--public-key", str(log.public_key)
    )
    assert (code, printed.strip()) == (
        2,
        f"error: --index: {index!r} is not an entry index (a whole number, 0 or more)",
    )


def test_an_unreachable_database_is_one_line_without_its_password(log: LogOnDisk) -> None:
    url = "postgresql+psycopg://auditor:s3cret@127.0.0.1:1/junction"
    code, printed = run("verify", "--db", url, "--public-key", str(log.public_key))
    assert code == 2, printed
    assert printed.startswith("error: cannot reach the audit database: ")
    assert len(printed.strip().splitlines()) == 1
    assert "s3cret" not in printed


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (
            "mysql://auditor:s3cret@127.0.0.1:1/junction",
            "error: the audit log runs on SQLite or PostgreSQL, not mysql",
        ),
        (
            "postgresql+nodriver://auditor:s3cret@db/junction",
            "error: cannot use database URL 'postgresql+nodriver://auditor:***@db/junction': ",
        ),
        (
            "postgresql://auditor:s3cret@db:port/junction",
            "error: cannot use database URL 'postgresql://auditor:***@db:port/junction': ",
        ),
    ],
)
def test_a_database_url_that_cannot_be_used_never_shows_its_password(
    log: LogOnDisk, url: str, says: str
) -> None:
    code, printed = run("verify", "--db", url, "--public-key", str(log.public_key))
    assert code == 2, printed
    assert printed.startswith(says)
    assert "s3cret" not in printed
