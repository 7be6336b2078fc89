"""``junction broker serve`` that cannot start as configured: one line, exit 2, no server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _serve(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``broker serve`` on a free port; one that started would run into the timeout."""
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", "broker", "serve", *args],
        env={
            **os.environ,
            "JUNCTION_DATA_DIR": str(data_dir),
            "JUNCTION_PORT": str(_free_port()),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _the_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error:`` line the command ended with (log lines may come before it)."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "[error" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip().endswith(errors[0])
    return errors[0]


def _not_a_key(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.txt"
    path.write_text("garbage\n")
    return path


@pytest.mark.parametrize(
    ("env", "says"),
    [
        (
            {"JUNCTION_DATABASE_URL": "garbage"},
            "error: cannot use database URL 'garbage'",
        ),
        (
            {"JUNCTION_DATABASE_URL": "mysql+pymysql://u:p@127.0.0.1:1/x"},
            "error: the broker runs on SQLite or PostgreSQL, not mysql",
        ),
        (
            {"JUNCTION_DATABASE_URL": "postgresql+psycopg://u:p@127.0.0.1:1/x"},
            "error: cannot prepare the broker's tables: connection failed",
        ),
        (
            {"JUNCTION_AUDIT_ORIGIN": "a b"},
            "error: cannot open the audit log: key name 'a b'",
        ),
        (
            {"JUNCTION_POLICY_BUNDLE_DIRS": '["/nonexistent/policy"]'},
            "error: the policy bundle cannot be used: bundle directory /nonexistent/policy",
        ),
    ],
)
def test_a_setting_that_cannot_work_stops_serve_with_one_line(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    assert _the_error(_serve(tmp_path / "var", **env)).startswith(says)


def test_a_database_file_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{_not_a_key(tmp_path)}"
    error = _the_error(_serve(tmp_path / "var", JUNCTION_DATABASE_URL=url))
    assert error == "error: cannot prepare the broker's tables: file is not a database"


def test_an_opa_server_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{_free_port()}"
    result = _serve(tmp_path / "var", JUNCTION_POLICY_ENGINE="opa", JUNCTION_POLICY_OPA_URL=nowhere)
    assert _the_error(result).startswith(
        f"error: the policy bundle cannot be used: the OPA server at {nowhere}"
    )


def test_an_unusable_signing_key_is_named_as_the_signing_key(tmp_path: Path) -> None:
    key = _not_a_key(tmp_path)
    error = _the_error(_serve(tmp_path / "var", JUNCTION_SIGNING_KEY=str(key)))
    assert (
        error
        == f"error: JUNCTION_SIGNING_KEY is unusable: {key} is not an unencrypted PEM private key"
    )
    # Found before the database was made.
    assert not (tmp_path / "var" / "broker.db").exists()


def test_an_unusable_consent_key_is_one_line(tmp_path: Path) -> None:
    key = _not_a_key(tmp_path)
    error = _the_error(_serve(tmp_path / "var", JUNCTION_CONSENT_KEY=str(key)))
    assert error.startswith(f"error: cannot read the consent key {key}: ")
    assert not (tmp_path / "var" / "broker.db").exists()
