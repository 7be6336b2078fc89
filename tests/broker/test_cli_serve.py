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


@pytest.mark.parametrize(
    ("port", "says"),
    [
        ("70000", "Input should be less than or equal to 65535"),
        ("0", "Input should be greater than or equal to 1"),
        ("-1", "Input should be greater than or equal to 1"),
        ("eighty", "Input should be a valid integer"),
    ],
)
@pytest.mark.parametrize(
    "command", [["broker", "serve"], ["connector", "serve", "--config", "agency.yaml"]]
)
def test_a_port_that_is_no_port_is_refused_before_anything_starts(
    tmp_path: Path, command: list[str], port: str, says: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "broker.cli", *command, "--port", port],
        cwd=tmp_path,
        env={**os.environ, "JUNCTION_DATA_DIR": str(tmp_path / "var")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: Invalid value for '--port': {says}")
    assert lines[0].endswith(f"{' '.join(command[:2])} --help)")
    assert not (tmp_path / "var").exists()


def test_a_port_in_use_is_named_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve(tmp_path / "var", "--port", str(port))
    assert _the_error(result) == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert not (tmp_path / "var").exists()


def test_a_host_that_does_not_resolve_is_one_line(tmp_path: Path) -> None:
    result = _serve(tmp_path / "var", "--host", "999.1.1.1")
    assert _the_error(result).startswith("error: cannot listen on 999.1.1.1:")
    assert not (tmp_path / "var").exists()
