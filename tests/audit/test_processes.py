"""Several processes on one log, and a process killed with SIGKILL while appending."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from audit import AuditLog, NoteSigner, verify_store
from tests.audit.conftest import make_entry

WRITER = Path(__file__).with_name("_writer.py")


def _key_file(signer: NoteSigner, tmp_path: Path) -> Path:
    path = tmp_path / "log.key"
    path.write_bytes(
        signer.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _writer(url: str, key: Path, threads: int, per_thread: int) -> subprocess.Popen[str]:
    command = [sys.executable, str(WRITER), url, str(key), str(threads), str(per_thread)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_processes_appending_together_never_repeat_or_skip(
    db_url: str, signer: NoteSigner, tmp_path: Path
) -> None:
    AuditLog.open(db_url, signer).close()  # create the schema once, before the race
    key = _key_file(signer, tmp_path)
    writers = [_writer(db_url, key, 4, 60) for _ in range(3)]
    printed: list[int] = []
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        printed.extend(int(line) for line in out.split())
    assert sorted(printed) == list(range(720))
    with AuditLog.open(db_url, signer) as log:
        report = verify_store(log.store, log.verifier)
    assert report.ok, report.findings
    assert report.entries == report.signed_size == 720


@pytest.mark.slow
def test_sigkill_loses_no_returned_append(db_url: str, signer: NoteSigner, tmp_path: Path) -> None:
    AuditLog.open(db_url, signer).close()
    writer = _writer(db_url, _key_file(signer, tmp_path), 8, 0)
    assert writer.stdout is not None
    printed: list[int] = []
    deadline = time.monotonic() + 60
    while len(printed) < 400 and time.monotonic() < deadline:
        line = writer.stdout.readline()
        if not line:
            break
        printed.append(int(line))
    writer.send_signal(signal.SIGKILL)
    rest, err = writer.communicate(timeout=30)
    printed.extend(int(line) for line in rest.split())
    assert writer.returncode == -signal.SIGKILL
    assert len(printed) >= 400, err
    with AuditLog.open(db_url, signer) as log:
        for index in printed:
            assert log.get(index).index == index
        stored = log.store.size()
        assert stored >= len(printed)
        # The log carries on after the crash, and the whole of it verifies.
        assert log.append(make_entry(1, actor="after-the-crash")) == stored
        assert log.get(stored).fields["actor"] == "after-the-crash"
    with AuditLog.open(db_url, signer) as log:
        report = verify_store(log.store, log.verifier)
    assert report.ok, report.findings
    assert report.entries == stored + 1
