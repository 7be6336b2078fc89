"""A log on disk with its key files, and ``junction audit`` run on it, for the CLI tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from audit import DEFAULT_ORIGIN, AuditLog, NoteSigner
from audit.cli import app
from connectors.protocol.keys import generate_key_files
from tests.audit.conftest import make_entry

_runner = CliRunner()


@dataclass(frozen=True, slots=True)
class LogOnDisk:
    """A SQLite log: its URL, its database file, and its log key's files."""

    url: str
    path: Path
    public_key: Path
    signer: NoteSigner


def write_log(folder: Path, entries: int = 30) -> LogOnDisk:
    """A log of ``entries`` entries in ``folder``, with a checkpoint every 10."""
    generate_key_files(folder / "keys", "log")
    signer = NoteSigner.from_pem(folder / "keys" / "log.key", DEFAULT_ORIGIN)
    path = folder / "audit.db"
    url = f"sqlite:///{path}"
    with AuditLog.open(url, signer, checkpoint_interval=60, checkpoint_entries=10) as log:
        for i in range(entries):
            log.append(make_entry(i))
    return LogOnDisk(url, path, folder / "keys" / "log.pub", signer)


def run(*args: str) -> tuple[int, str]:
    """The exit status and everything printed (standard output, then errors); an
    exception the command let escape (a traceback, to its user) is raised."""
    result = _runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def one_line(printed: str) -> str:
    """What was printed, with the terminal's line wrapping undone."""
    return " ".join(printed.split())
